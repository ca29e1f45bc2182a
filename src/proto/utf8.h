// UTF-8 decoding for the reversal units: a strict decoder (Unicode 15.0, Table 3-7). Pure inline
// functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace reverb::utf8 {

// One decoded code point. length 0 means p[0] does not start a well-formed sequence; the caller
// then treats that byte as a unit of its own.
struct Decoded {
  char32_t codepoint;
  uint32_t length;  // 0 (ill-formed) or 1..4
};

inline bool isContinuation(unsigned char b) noexcept {
  return (b & 0xC0) == 0x80;
}

// Decodes the sequence at p[0, n), n >= 1. Rejects overlong forms, surrogates (ED A0..BF),
// values above U+10FFFF and truncated sequences, exactly as Unicode Table 3-7 requires.
inline Decoded decode(const unsigned char* p, size_t n) noexcept {
  const unsigned b0 = p[0];
  if (b0 < 0x80) return {b0, 1};
  if (b0 < 0xC2) return {0, 0};  // a continuation byte, or the lead of an overlong 2-byte form
  if (b0 < 0xE0) {
    if (n < 2 || !isContinuation(p[1])) return {0, 0};
    return {static_cast<char32_t>(((b0 & 0x1F) << 6) | (p[1] & 0x3F)), 2};
  }
  if (b0 < 0xF0) {
    if (n < 3) return {0, 0};
    const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80;  // E0 80..9F would be overlong
    const unsigned hi = b0 == 0xED ? 0x9F : 0xBF;  // ED A0..BF would be a surrogate
    if (p[1] < lo || p[1] > hi || !isContinuation(p[2])) return {0, 0};
    return {static_cast<char32_t>(((b0 & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F)), 3};
  }
  if (b0 < 0xF5) {
    if (n < 4) return {0, 0};
    const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80;  // F0 80..8F would be overlong
    const unsigned hi = b0 == 0xF4 ? 0x8F : 0xBF;  // F4 90.. would pass U+10FFFF
    if (p[1] < lo || p[1] > hi || !isContinuation(p[2]) || !isContinuation(p[3])) return {0, 0};
    return {static_cast<char32_t>(((b0 & 0x07) << 18) | ((p[1] & 0x3F) << 12) |
                                  ((p[2] & 0x3F) << 6) | (p[3] & 0x3F)),
            4};
  }
  return {0, 0};  // F5..FF never appear in UTF-8
}

// Length of the well-formed sequence at p[0, n), n >= 1: 1 to 4, or 0 when p[0] does not start
// one. For callers that only pass valid UTF-8 through and replace the rest (the JSON writer).
inline size_t validLength(const unsigned char* p, size_t n) noexcept {
  return decode(p, n).length;
}

}  // namespace reverb::utf8
