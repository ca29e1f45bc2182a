// Framing: how a byte stream is cut into messages and how a reply is laid out. Pure: no I/O and no
// allocation; the server, the load generator and the tests all use these same functions, so what
// the client expects is computed by the code the server runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/reverse.h"

namespace reverb {

enum class Framing : uint8_t {
  kChunk,   // every chunk read from the socket is a message (the article's behaviour)
  kLine,    // LF-terminated lines; CR LF keeps its CR out of the reversal
  kLength,  // 4-byte big-endian length, then that many bytes
};

std::string_view toString(Framing framing) noexcept;
// Returns nullopt for an unknown name.
std::optional<Framing> parseFraming(std::string_view name) noexcept;

struct FrameLimits {
  size_t maxLine = 65536;     // longest line content, CR and LF excluded
  size_t maxFrame = 1 << 20;  // longest length-framed payload
};

// One step of parsing: a message, a need for more input, or a protocol violation.
struct Frame {
  enum class Status : uint8_t { kNeedMore, kMessage, kTooLong };
  Status status = Status::kNeedMore;
  std::string_view payload;     // the bytes to reverse; points into the parsed input
  std::string_view terminator;  // sent after the reversed payload: "", "\n" or "\r\n"
  size_t consumed = 0;          // input bytes this frame used, header and terminator included
};

// Framer: cuts one connection's input into frames.
// Ownership: borrows the input passed to next(); keeps only a scan offset, so a long partial line
// is not scanned again when more bytes arrive. Threading: any one thread at a time.
class Framer {
 public:
  Framer(Framing framing, FrameLimits limits) noexcept : framing_(framing), limits_(limits) {}

  // Parses the frame at the start of `in`, the unconsumed input. `eof`: no more input will
  // follow, so a last line without LF is a message. The caller drops frame.consumed bytes from the
  // front of its input before the next call; kTooLong is final for the connection.
  Frame next(std::string_view in, bool eof) noexcept;

  Framing framing() const noexcept { return framing_; }
  const FrameLimits& limits() const noexcept { return limits_; }

 private:
  Frame nextLine(std::string_view in, bool eof) noexcept;
  Frame nextLength(std::string_view in) const noexcept;

  Framing framing_;
  FrameLimits limits_;
  size_t scanned_ = 0;  // line framing: bytes of `in` already known to hold no LF
};

// Size of the reply to `frame`.
size_t replySize(Framing framing, const Frame& frame) noexcept;

// Writes the reply to `frame` into out[0, replySize(framing, frame)).
void writeReply(Framing framing, Unit unit, const Frame& frame, char* out) noexcept;

// Client side: appends the request that carries `payload` in `framing` to out. In line framing the
// payload must not contain LF.
void appendRequest(Framing framing, std::string_view payload, std::string& out);

// Client side: the exact reply bytes the server sends for a request carrying `payload`.
std::string expectedReply(Framing framing, Unit unit, std::string_view payload);

}  // namespace reverb
