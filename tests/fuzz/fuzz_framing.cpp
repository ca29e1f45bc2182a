// Fuzz target: the three framers (chunk, line, length), fed a byte stream cut at random points as a
// connection's reads would cut it, with random limits. Checks, for every frame:
//  - it equals what a plain, stateless reading of docs/PROTOCOL.md gives for the same input
//    (status, payload, terminator, bytes consumed): so the only errors are the documented ones
//    (a line over --max-line, a frame header over --max-frame), raised exactly when documented;
//  - the frame encoded again (header, payload, terminator) equals the input it consumed;
//  - nothing is read past the input: each call gets an exact-size heap copy, which ASan guards;
//  - the reply has replySize() bytes: header, reversed payload, terminator;
//  - a client's request for that payload (appendRequest) parses back to the same payload.
// Input layout (FuzzedDataProvider): limits, framing, unit and the cuts come from the end of the
// data, the stream bytes from the front.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "proto/framing.h"
#include "proto/reverse.h"

namespace {

using reverb::Frame;
using reverb::FrameLimits;
using reverb::Framing;
using reverb::Unit;

// What docs/PROTOCOL.md says the frame at the start of `in` is, computed without the framer's
// scan offset or window.
Frame expectedFrame(Framing framing, const FrameLimits& limits, std::string_view in, bool eof) {
  switch (framing) {
    case Framing::kChunk:
      if (in.empty()) return {};
      return {Frame::Status::kMessage, in, {}, in.size()};
    case Framing::kLine: {
      const size_t lf = in.find('\n');
      if (lf != std::string_view::npos) {
        const bool crlf = lf > 0 && in[lf - 1] == '\r';
        const size_t content = crlf ? lf - 1 : lf;
        if (content > limits.maxLine) return {Frame::Status::kTooLong, {}, {}, 0};
        return {Frame::Status::kMessage, in.substr(0, content), crlf ? "\r\n" : "\n", lf + 1};
      }
      // No LF yet: the line is already too long if even a CR LF right now would leave more than
      // maxLine bytes of content; at EOF every byte is content (a lone last CR too).
      const bool tooLong = in.size() > limits.maxLine + 1 ||
                           (in.size() == limits.maxLine + 1 && (eof || in.back() != '\r'));
      if (tooLong) return {Frame::Status::kTooLong, {}, {}, 0};
      if (eof && !in.empty()) return {Frame::Status::kMessage, in, {}, in.size()};
      return {};
    }
    case Framing::kLength: {
      if (in.size() < 4) return {};
      const auto* u = reinterpret_cast<const unsigned char*>(in.data());
      const uint64_t length =
          (uint64_t{u[0]} << 24) | (uint64_t{u[1]} << 16) | (uint64_t{u[2]} << 8) | u[3];
      if (length > limits.maxFrame) return {Frame::Status::kTooLong, {}, {}, 0};
      if (in.size() - 4 < length) return {};
      return {Frame::Status::kMessage, in.substr(4, length), {}, 4 + length};
    }
  }
  return {};
}

size_t headerSize(Framing framing) {
  return framing == Framing::kLength ? 4 : 0;
}

// Printed before an invariant aborts, so that the crash report says what was parsed.
void describe(Framing framing, const FrameLimits& limits, std::string_view in, bool eof,
              const Frame& got, const Frame& want) {
  std::fprintf(stderr, "framing %s, max-line %zu, max-frame %zu, eof %d, input (%zu bytes):",
               std::string(reverb::toString(framing)).c_str(), limits.maxLine, limits.maxFrame,
               eof ? 1 : 0, in.size());
  for (size_t i = 0; i < std::min<size_t>(in.size(), 64); ++i) {
    std::fprintf(stderr, " %02x", static_cast<unsigned char>(in[i]));
  }
  std::fprintf(stderr, "%s\nframer: status %d consumed %zu; PROTOCOL.md: status %d consumed %zu\n",
               in.size() > 64 ? " ..." : "", static_cast<int>(got.status), got.consumed,
               static_cast<int>(want.status), want.consumed);
}

void checkFrame(Framing framing, Unit unit, const FrameLimits& limits, std::string_view in,
                bool eof, const Frame& got) {
  const Frame want = expectedFrame(framing, limits, in, eof);
  if (got.status != want.status || got.consumed != want.consumed) {
    describe(framing, limits, in, eof, got, want);
  }
  FUZZ_CHECK(got.status == want.status, "the framer's status differs from PROTOCOL.md's");
  if (got.status != Frame::Status::kMessage) {
    FUZZ_CHECK(got.consumed == 0, "a frame that is not a message consumed input");
    return;
  }
  FUZZ_CHECK(got.payload == want.payload, "payload differs from PROTOCOL.md's");
  FUZZ_CHECK(got.terminator == want.terminator, "terminator differs from PROTOCOL.md's");
  FUZZ_CHECK(got.consumed == want.consumed, "consumed count differs from PROTOCOL.md's");
  FUZZ_CHECK(got.consumed > 0 && got.consumed <= in.size(), "consumed past the input");
  // The payload lies inside the input, right after the header.
  FUZZ_CHECK(got.payload.data() == in.data() + headerSize(framing), "payload not after the header");

  // Encoded again, the frame is exactly the bytes it consumed.
  std::string encoded(in.substr(0, headerSize(framing)));
  encoded.append(got.payload);
  encoded.append(got.terminator);
  FUZZ_CHECK(encoded == in.substr(0, got.consumed), "the frame re-encoded differs from its input");

  // The reply, into an exact-size buffer (ASan catches a write past it).
  const size_t size = reverb::replySize(framing, got);
  FUZZ_CHECK(size == headerSize(framing) + got.payload.size() + got.terminator.size(),
             "replySize is not header + payload + terminator");
  std::unique_ptr<char[]> reply(new char[size]);
  reverb::writeReply(framing, unit, got, reply.get());
  const std::string_view r(reply.get(), size);
  FUZZ_CHECK(r.substr(0, headerSize(framing)) == in.substr(0, headerSize(framing)),
             "the reply's length header differs from the request's");
  FUZZ_CHECK(
      r.substr(headerSize(framing), got.payload.size()) == reverb::reversed(unit, got.payload),
      "the reply's body is not the reversed payload");
  FUZZ_CHECK(r.substr(headerSize(framing) + got.payload.size()) == got.terminator,
             "the reply's terminator differs from the request's");

  // The client side: the request reverb-load would send for this payload parses back to it (in
  // line framing a payload ending in CR would come back as CR LF: expectedReply's case).
  if (framing == Framing::kLine && !got.payload.empty() && got.payload.back() == '\r') return;
  std::string request;
  reverb::appendRequest(framing, got.payload, request);
  reverb::Framer fresh(framing, limits);
  const Frame back = fresh.next(request, false);
  FUZZ_CHECK(back.status == Frame::Status::kMessage && back.payload == got.payload &&
                 back.consumed == request.size(),
             "appendRequest's request does not parse back to its payload");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const auto framing = static_cast<Framing>(fdp.ConsumeIntegralInRange<int>(0, 2));
  const auto unit = static_cast<Unit>(fdp.ConsumeIntegralInRange<int>(0, 2));
  FrameLimits limits;
  // Small limits most of the time, so that the limit paths are reached; reverbd's bounds
  // (--max-line >= 1, --max-frame >= 0) otherwise.
  limits.maxLine = fdp.ConsumeBool() ? fdp.ConsumeIntegralInRange<size_t>(1, 64)
                                     : fdp.ConsumeIntegralInRange<size_t>(1, size_t{1} << 30);
  limits.maxFrame = fdp.ConsumeBool() ? fdp.ConsumeIntegralInRange<size_t>(0, 64)
                                      : fdp.ConsumeIntegralInRange<size_t>(0, size_t{1} << 30);
  const bool peerCloses = fdp.ConsumeBool();

  reverb::Framer framer(framing, limits);
  std::string pending;  // received, not yet consumed: the connection's in_
  bool done = false;
  while (!done) {
    const bool last = fdp.remaining_bytes() == 0;
    if (!last) {
      // One read: up to 512 bytes of the stream.
      const size_t n = fdp.ConsumeIntegralInRange<size_t>(1, 512);
      pending += fdp.ConsumeBytesAsString(n);
    }
    const bool eof = last && peerCloses;
    for (;;) {
      // An exact-size copy: any read past the input is a heap overflow ASan reports.
      std::unique_ptr<char[]> exact(new char[pending.size()]);
      std::memcpy(exact.get(), pending.data(), pending.size());
      const std::string_view in(exact.get(), pending.size());
      const Frame frame = framer.next(in, eof);
      checkFrame(framing, unit, limits, in, eof, frame);
      if (frame.status == Frame::Status::kTooLong) {
        done = true;  // final for the connection
        break;
      }
      if (frame.status == Frame::Status::kNeedMore) break;
      pending.erase(0, frame.consumed);
    }
    if (last) done = true;
  }
  return 0;
}
