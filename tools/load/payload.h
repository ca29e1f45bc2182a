// Payloads: the messages reverb-load sends, each stored with its framed request bytes and the exact
// reply the server must send back, computed once at start-up by proto's own framing and
// reversal functions (reverb::appendRequest, reverb::expectedReply). The hot path only indexes.
// Ownership: MessagePool owns every byte; connections borrow views. Threading: immutable after
// build(), so any number of threads may read it at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "proto/framing.h"
#include "proto/reverse.h"

namespace reverb::load {

enum class PayloadKind : uint8_t {
  kAscii,   // printable ASCII, 0x20 to 0x7e
  kUtf8,    // valid UTF-8 mixing 1/2/3/4-byte characters, combining marks, ZWJ emoji and flags
  kBinary,  // any byte value (LF excluded in line framing)
};

std::string_view toString(PayloadKind kind) noexcept;
// Returns nullopt for an unknown name.
std::optional<PayloadKind> parsePayloadKind(std::string_view name) noexcept;

// Returns exactly `size` bytes of `kind`, drawn from rng; never contains LF when noLineFeed.
// UTF-8 payloads are valid UTF-8 and end on a character boundary whatever the size.
std::string makePayload(PayloadKind kind, size_t size, bool noLineFeed, std::mt19937_64& rng);

struct PayloadSpec {
  std::optional<std::string> message;  // a fixed message: the pool holds just it
  size_t sizeMin = 16;                 // payload bytes, before framing
  size_t sizeMax = 16;
  PayloadKind kind = PayloadKind::kAscii;
  uint64_t seed = 1;
  size_t poolSize = 0;  // distinct messages; 0 picks up to 1024 within a 64 MiB budget
};

// MessagePool: the distinct messages of a run. Threading: immutable after build().
class MessagePool {
 public:
  // Fails with invalid_argument and a sentence when the spec cannot be framed: LF inside a
  // line-framed message, an empty chunk-framed message, sizeMin > sizeMax, a length-framed
  // payload over 4 GiB.
  static Result<MessagePool> build(Framing framing, Unit unit, const PayloadSpec& spec);

  size_t size() const noexcept { return entries_.size(); }
  std::string_view payload(size_t i) const noexcept { return view(entries_[i].payload); }
  std::string_view request(size_t i) const noexcept { return view(entries_[i].request); }
  std::string_view reply(size_t i) const noexcept { return view(entries_[i].reply); }

  Framing framing() const noexcept { return framing_; }
  Unit unit() const noexcept { return unit_; }
  size_t maxRequestSize() const noexcept { return maxRequest_; }
  size_t maxReplySize() const noexcept { return maxReply_; }
  double meanRequestSize() const noexcept;
  double meanReplySize() const noexcept;

 private:
  struct Span {
    size_t offset = 0;
    size_t length = 0;
  };
  struct Entry {
    Span payload;
    Span request;
    Span reply;
  };
  std::string_view view(Span s) const noexcept { return {arena_.data() + s.offset, s.length}; }

  Framing framing_ = Framing::kLine;
  Unit unit_ = Unit::kByte;
  std::string arena_;
  std::vector<Entry> entries_;
  size_t maxRequest_ = 0;
  size_t maxReply_ = 0;
};

}  // namespace reverb::load
