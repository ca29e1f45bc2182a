// UTF-8 helpers for the reversal units: a strict decoder (Unicode 15.0, Table 3-7) and an ASCII
// scanner. Pure inline functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// The result of scanning for the ASCII prefix of a buffer.
struct AsciiRun {
  size_t length;  // bytes before the first byte >= 0x80 (the whole buffer if none)
  bool hasCr;     // whether p[0, length) contains a CR (0x0D)
};

// Measures the ASCII prefix of p[0, n) and notes whether it holds a CR, in one pass: 64 bytes a
// step with SSE2 (part of x86-64 itself, so no run-time check), 8 bytes a step elsewhere.
inline AsciiRun scanAscii(const unsigned char* p, size_t n) noexcept {
  size_t i = 0;
  bool hasCr = false;
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  __m128i crs = _mm_setzero_si128();
  for (; i + 64 <= n; i += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 48));
    if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))) != 0) break;
    crs =
        _mm_or_si128(crs, _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(a, cr), _mm_cmpeq_epi8(b, cr)),
                                       _mm_or_si128(_mm_cmpeq_epi8(c, cr), _mm_cmpeq_epi8(d, cr))));
  }
  hasCr = _mm_movemask_epi8(crs) != 0;
#endif
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if ((w & kHigh) != 0) break;
    const uint64_t x = w ^ (kOnes * '\r');  // a zero byte where w has a CR
    hasCr = hasCr || (((x - kOnes) & ~x & kHigh) != 0);
  }
  for (; i < n && p[i] < 0x80; ++i) hasCr = hasCr || p[i] == '\r';
  return {i, hasCr};
}

}  // namespace reverb::utf8
