#include "load/payload.h"

#include <algorithm>
#include <array>
#include <numeric>

namespace reverb::load {
namespace {

// Pieces a UTF-8 payload is assembled from: every width of character, and the sequences that make
// grapheme reversal differ from code point reversal (combining marks, ZWJ emoji, flags, modifiers,
// conjoining Hangul jamo).
constexpr std::array<std::string_view, 18> kUtf8Pieces = {
    "\xC3\xA9",                                  // é U+00E9 (2 bytes)
    "\xD0\xB6",                                  // ж U+0436
    "\xD7\xA9",                                  // ש U+05E9
    "\xE4\xB8\xAD",                              // 中 U+4E2D (3 bytes)
    "\xE2\x82\xAC",                              // € U+20AC
    "\xED\x95\x9C",                              // 한 U+D55C, precomposed
    "\xF0\x9F\x98\x80",                          // 😀 U+1F600 (4 bytes)
    "\xF0\x9D\x84\x9E",                          // 𝄞 U+1D11E
    "e\xCC\x81",                                 // e + U+0301 combining acute
    "a\xCC\x88\xCC\xA3",                         // a + U+0308 + U+0323, two marks
    "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB",  // 👩‍💻 woman + ZWJ + laptop
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",  // 👨‍👩‍👧 family
    "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7",          // 🇫🇷 regional indicators F R
    "\xF0\x9F\x87\xAF\xF0\x9F\x87\xB5",          // 🇯🇵
    "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",          // 👍🏽 thumbs up + skin tone modifier
    "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB",      // 한 as conjoining jamo L V T
    "\xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xB7",      // क्ष Devanagari conjunct with virama
    "\r\n",                                      // CR LF, one grapheme (LF only where allowed)
};

char printable(std::mt19937_64& rng) {
  return static_cast<char>(0x20 + rng() % (0x7f - 0x20));
}

}  // namespace

std::string_view toString(PayloadKind kind) noexcept {
  switch (kind) {
    case PayloadKind::kAscii:
      return "ascii";
    case PayloadKind::kUtf8:
      return "utf8";
    case PayloadKind::kBinary:
      return "binary";
  }
  return "?";
}

std::optional<PayloadKind> parsePayloadKind(std::string_view name) noexcept {
  if (name == "ascii") return PayloadKind::kAscii;
  if (name == "utf8") return PayloadKind::kUtf8;
  if (name == "binary") return PayloadKind::kBinary;
  return std::nullopt;
}

std::string makePayload(PayloadKind kind, size_t size, bool noLineFeed, std::mt19937_64& rng) {
  std::string out;
  out.reserve(size);
  switch (kind) {
    case PayloadKind::kAscii:
      while (out.size() < size) out.push_back(printable(rng));
      break;
    case PayloadKind::kBinary:
      while (out.size() < size) {
        auto b = static_cast<char>(rng() & 0xff);
        if (noLineFeed && b == '\n') continue;
        out.push_back(b);
      }
      break;
    case PayloadKind::kUtf8:
      while (out.size() < size) {
        // One draw in four is an ASCII character, so every size can be filled exactly.
        size_t left = size - out.size();
        size_t pick = rng() % (kUtf8Pieces.size() + kUtf8Pieces.size() / 3);
        if (pick >= kUtf8Pieces.size()) {
          out.push_back(printable(rng));
          continue;
        }
        std::string_view piece = kUtf8Pieces[pick];
        if (piece.size() > left || (noLineFeed && piece.find('\n') != std::string_view::npos)) {
          continue;
        }
        out.append(piece);
      }
      break;
  }
  return out;
}

Result<MessagePool> MessagePool::build(Framing framing, Unit unit, const PayloadSpec& spec) {
  auto invalid = [](std::string why) { return makeError(std::errc::invalid_argument, std::move(why)); };
  const bool line = framing == Framing::kLine;
  std::vector<std::string> payloads;
  if (spec.message) {
    payloads.push_back(*spec.message);
  } else {
    if (spec.sizeMin > spec.sizeMax) return invalid("--size-min is larger than --size-max");
    size_t pool = spec.poolSize;
    if (pool == 0) {
      constexpr size_t kBudget = size_t{64} << 20;
      pool = std::clamp<size_t>(kBudget / (2 * spec.sizeMax + 16), 1, 1024);
    }
    std::mt19937_64 rng(spec.seed);
    std::uniform_int_distribution<size_t> sizes(spec.sizeMin, spec.sizeMax);
    payloads.reserve(pool);
    for (size_t i = 0; i < pool; ++i) payloads.push_back(makePayload(spec.kind, sizes(rng), line, rng));
  }

  MessagePool out;
  out.framing_ = framing;
  out.unit_ = unit;
  std::string request;
  for (const std::string& payload : payloads) {
    if (line && payload.find('\n') != std::string::npos) {
      return invalid("a line-framed message cannot contain LF (use --framing length or chunk)");
    }
    if (framing == Framing::kChunk && payload.empty()) {
      return invalid("chunk framing cannot send an empty message (use --size 1 or more)");
    }
    if (framing == Framing::kLength && payload.size() > UINT32_MAX) {
      return invalid("a length-framed message is at most 4 GiB");
    }
    request.clear();
    appendRequest(framing, payload, request);
    std::string reply = expectedReply(framing, unit, payload);
    Entry entry;
    entry.payload = {out.arena_.size(), payload.size()};
    out.arena_.append(payload);
    entry.request = {out.arena_.size(), request.size()};
    out.arena_.append(request);
    entry.reply = {out.arena_.size(), reply.size()};
    out.arena_.append(reply);
    out.maxRequest_ = std::max(out.maxRequest_, request.size());
    out.maxReply_ = std::max(out.maxReply_, reply.size());
    out.entries_.push_back(entry);
  }
  return out;
}

double MessagePool::meanRequestSize() const noexcept {
  if (entries_.empty()) return 0;
  double sum = 0;
  for (const Entry& e : entries_) sum += static_cast<double>(e.request.length);
  return sum / static_cast<double>(entries_.size());
}

double MessagePool::meanReplySize() const noexcept {
  if (entries_.empty()) return 0;
  double sum = 0;
  for (const Entry& e : entries_) sum += static_cast<double>(e.reply.length);
  return sum / static_cast<double>(entries_.size());
}

}  // namespace reverb::load
