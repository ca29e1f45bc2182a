#include "proto/framing.h"

#include <cstring>

namespace reverb {
namespace {

constexpr size_t kLengthHeader = 4;

uint32_t loadBigEndian32(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

void storeBigEndian32(uint32_t v, char* p) noexcept {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

}  // namespace

std::string_view toString(Framing framing) noexcept {
  switch (framing) {
    case Framing::kChunk:
      return "chunk";
    case Framing::kLine:
      return "line";
    case Framing::kLength:
      return "length";
  }
  return "?";
}

std::optional<Framing> parseFraming(std::string_view name) noexcept {
  if (name == "chunk") return Framing::kChunk;
  if (name == "line") return Framing::kLine;
  if (name == "length") return Framing::kLength;
  return std::nullopt;
}

Frame Framer::next(std::string_view in, bool eof) noexcept {
  switch (framing_) {
    case Framing::kChunk:
      if (in.empty()) return {};
      return {Frame::Status::kMessage, in, {}, in.size()};
    case Framing::kLine:
      return nextLine(in, eof);
    case Framing::kLength:
      return nextLength(in);
  }
  return {};
}

Frame Framer::nextLine(std::string_view in, bool eof) noexcept {
  // A line's content may be maxLine bytes, then CR LF: nothing past maxLine + 2 bytes needs a look.
  const size_t window = std::min(in.size(), limits_.maxLine + 2);
  const char* lf = nullptr;
  if (scanned_ < window) {
    lf = static_cast<const char*>(std::memchr(in.data() + scanned_, '\n', window - scanned_));
  }
  if (lf == nullptr) {
    scanned_ = window;
    // One byte over the limit may still be the CR of a CR LF to come; not at EOF, where every byte
    // is content (a lone last CR too).
    bool longerThanAllowed = in.size() > limits_.maxLine + 1 ||
                             (in.size() == limits_.maxLine + 1 && (eof || in.back() != '\r'));
    if (longerThanAllowed) {
      scanned_ = 0;
      return {Frame::Status::kTooLong, {}, {}, 0};
    }
    if (eof && !in.empty()) {
      // The last line, without LF: answered without LF. A lone trailing CR is content here.
      scanned_ = 0;
      return {Frame::Status::kMessage, in, {}, in.size()};
    }
    return {};
  }
  scanned_ = 0;
  size_t end = static_cast<size_t>(lf - in.data());
  bool crlf = end > 0 && in[end - 1] == '\r';
  size_t contentLength = crlf ? end - 1 : end;
  if (contentLength > limits_.maxLine) return {Frame::Status::kTooLong, {}, {}, 0};
  return {Frame::Status::kMessage, in.substr(0, contentLength), crlf ? "\r\n" : "\n", end + 1};
}

Frame Framer::nextLength(std::string_view in) const noexcept {
  if (in.size() < kLengthHeader) return {};
  uint32_t length = loadBigEndian32(in.data());
  if (length > limits_.maxFrame) return {Frame::Status::kTooLong, {}, {}, 0};
  if (in.size() - kLengthHeader < length) return {};
  return {Frame::Status::kMessage, in.substr(kLengthHeader, length), {}, kLengthHeader + length};
}

size_t replySize(Framing framing, const Frame& frame) noexcept {
  size_t header = framing == Framing::kLength ? kLengthHeader : 0;
  return header + frame.payload.size() + frame.terminator.size();
}

void writeReply(Framing framing, Unit unit, const Frame& frame, char* out) noexcept {
  if (framing == Framing::kLength) {
    storeBigEndian32(static_cast<uint32_t>(frame.payload.size()), out);
    out += kLengthHeader;
  }
  reverseInto(unit, frame.payload, out);
  if (!frame.terminator.empty()) {
    std::memcpy(out + frame.payload.size(), frame.terminator.data(), frame.terminator.size());
  }
}

void appendRequest(Framing framing, std::string_view payload, std::string& out) {
  if (framing == Framing::kLength) {
    char header[kLengthHeader];
    storeBigEndian32(static_cast<uint32_t>(payload.size()), header);
    out.append(header, kLengthHeader);
  }
  out.append(payload);
  if (framing == Framing::kLine) out.push_back('\n');
}

std::string expectedReply(Framing framing, Unit unit, std::string_view payload) {
  Frame frame{Frame::Status::kMessage, payload, {}, 0};
  if (framing == Framing::kLine) {
    // The server sees a CR before the LF as part of the terminator, not of the content.
    bool crlf = !payload.empty() && payload.back() == '\r';
    frame.payload = crlf ? payload.substr(0, payload.size() - 1) : payload;
    frame.terminator = crlf ? "\r\n" : "\n";
  }
  std::string out(replySize(framing, frame), '\0');
  writeReply(framing, unit, frame, out.data());
  return out;
}

}  // namespace reverb
