// Byte reversal kernels and their run-time selection. Each vector kernel is the loop in
// reverse_bytes_loop.inc compiled inside a target region (`#pragma GCC target`, or clang's `#pragma
// clang attribute` with a target attribute), so the default build needs no -m flags and runs on any
// x86-64; the kernel is picked once from __builtin_cpu_supports.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "proto/reverse.h"
#include "proto/reverse_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#define REVERB_X86 1
#include <immintrin.h>
#endif

namespace reverb {
namespace {

// Portable: 8-byte words, byte-swapped. Right on any CPU and any endianness.
namespace portable {

template <typename T>
[[gnu::always_inline]] inline T load(const unsigned char* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
[[gnu::always_inline]] inline void store(unsigned char* p, T v) noexcept {
  std::memcpy(p, &v, sizeof v);
}

// n < 8: two overlapping swaps of the widest word that fits.
inline void reverseTiny(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  if (n >= 4) {
    const uint32_t head = load<uint32_t>(in);
    const uint32_t tail = load<uint32_t>(in + n - 4);
    store(out, __builtin_bswap32(tail));
    store(out + n - 4, __builtin_bswap32(head));
  } else if (n >= 2) {
    const uint16_t head = load<uint16_t>(in);
    const uint16_t tail = load<uint16_t>(in + n - 2);
    store(out, __builtin_bswap16(tail));
    store(out + n - 2, __builtin_bswap16(head));
  } else if (n == 1) {
    out[0] = in[0];
  }
}

[[gnu::always_inline]] inline void reverseKernel(const unsigned char* in, size_t n,
                                                 unsigned char* out) noexcept {
  if (n < 8) {
    reverseTiny(in, n, out);
    return;
  }
  const unsigned char* end = in + n;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint64_t a = load<uint64_t>(end - i - 8);
    const uint64_t b = load<uint64_t>(end - i - 16);
    store(out + i, __builtin_bswap64(a));
    store(out + i + 8, __builtin_bswap64(b));
  }
  if (i + 8 <= n) {
    store(out + i, __builtin_bswap64(load<uint64_t>(end - i - 8)));
    i += 8;
  }
  if (i < n) store(out + n - 8, __builtin_bswap64(load<uint64_t>(in)));
}

[[gnu::always_inline]] inline detail::AsciiPrefix reverseAsciiPrefixKernel(
    const unsigned char* in, size_t n, unsigned char* outEnd) noexcept {
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  size_t i = 0;
  uint64_t crs = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t w = load<uint64_t>(in + i);
    if ((w & kHigh) != 0) break;
    store(outEnd - i - 8, __builtin_bswap64(w));
    const uint64_t x = w ^ (kOnes * '\r');  // a zero byte where w has a CR
    crs |= (x - kOnes) & ~x & kHigh;
  }
  bool cr = crs != 0;
  for (; i < n && in[i] < 0x80; ++i) {
    *(outEnd - i - 1) = in[i];
    cr = cr || in[i] == '\r';
  }
  return {i, cr};
}

}  // namespace portable

#if REVERB_X86

// The pshufb control that reverses each 16-byte lane, for every vector width. A load from memory
// rather than _mm_setr_epi8 so unoptimised (debug, sanitizer) builds do not rebuild it per block.
alignas(64) constexpr unsigned char kReverseLanes[64] = {
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  //
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  //
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  //
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("ssse3"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("ssse3")
#endif
namespace ssse3 {
struct Vec {
  using T = __m128i;
  static constexpr size_t kWidth = 16;
  [[gnu::always_inline]] static T load(const unsigned char* p) noexcept {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  }
  [[gnu::always_inline]] static void store(unsigned char* p, T v) noexcept {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
  }
  [[gnu::always_inline]] static T reverse(T v) noexcept {
    return _mm_shuffle_epi8(v, _mm_load_si128(reinterpret_cast<const __m128i*>(kReverseLanes)));
  }
  [[gnu::always_inline]] static T zero() noexcept { return _mm_setzero_si128(); }
  [[gnu::always_inline]] static T orv(T a, T b) noexcept { return _mm_or_si128(a, b); }
  [[gnu::always_inline]] static T crs(T v) noexcept {
    return _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'));
  }
  [[gnu::always_inline]] static T special(T v) noexcept {  // signed: 0x80..0xFF are negative
    return _mm_cmpgt_epi8(_mm_set1_epi8('\r' + 1), v);
  }
  [[gnu::always_inline]] static uint64_t mask(T v) noexcept {
    return static_cast<uint32_t>(_mm_movemask_epi8(v));
  }
};
inline void reverseShort(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  portable::reverseKernel(in, n, out);
}
inline detail::AsciiPrefix reverseAsciiPrefixShort(const unsigned char* in, size_t n,
                                                   unsigned char* outEnd) noexcept {
  return portable::reverseAsciiPrefixKernel(in, n, outEnd);
}
#include "proto/reverse_bytes_loop.inc"
}  // namespace ssse3
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
namespace avx2 {
struct Vec {
  using T = __m256i;
  static constexpr size_t kWidth = 32;
  [[gnu::always_inline]] static T load(const unsigned char* p) noexcept {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  [[gnu::always_inline]] static void store(unsigned char* p, T v) noexcept {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
  // vpshufb reverses within each 16-byte lane; vpermq then swaps the two lanes.
  [[gnu::always_inline]] static T reverse(T v) noexcept {
    const __m256i lanes = _mm256_load_si256(reinterpret_cast<const __m256i*>(kReverseLanes));
    return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, lanes), 0x4E);
  }
  [[gnu::always_inline]] static T zero() noexcept { return _mm256_setzero_si256(); }
  [[gnu::always_inline]] static T orv(T a, T b) noexcept { return _mm256_or_si256(a, b); }
  [[gnu::always_inline]] static T crs(T v) noexcept {
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\r'));
  }
  [[gnu::always_inline]] static T special(T v) noexcept {  // signed: 0x80..0xFF are negative
    return _mm256_cmpgt_epi8(_mm256_set1_epi8('\r' + 1), v);
  }
  [[gnu::always_inline]] static uint64_t mask(T v) noexcept {
    return static_cast<uint32_t>(_mm256_movemask_epi8(v));
  }
};
// 16..31 bytes take one SSSE3 block and one overlapping one.
inline void reverseShort(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  ssse3::reverseKernel(in, n, out);
}
inline detail::AsciiPrefix reverseAsciiPrefixShort(const unsigned char* in, size_t n,
                                                   unsigned char* outEnd) noexcept {
  return ssse3::reverseAsciiPrefixKernel(in, n, outEnd);
}
#include "proto/reverse_bytes_loop.inc"
}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,avx512f,avx512bw"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw")
#endif
namespace avx512 {
struct Vec {
  using T = __m512i;
  static constexpr size_t kWidth = 64;
  [[gnu::always_inline]] static T load(const unsigned char* p) noexcept {
    return _mm512_loadu_si512(p);
  }
  [[gnu::always_inline]] static void store(unsigned char* p, T v) noexcept {
    _mm512_storeu_si512(p, v);
  }
  // vpshufb reverses within each 16-byte lane; vshufi64x2 then puts the lanes in order 3 2 1 0.
  [[gnu::always_inline]] static T reverse(T v) noexcept {
    const __m512i inLane = _mm512_shuffle_epi8(v, _mm512_load_si512(kReverseLanes));
    // The zero-masking form with every lane selected is the same instruction; the plain form
    // trips GCC 12's -Wmaybe-uninitialized inside its own header.
    return _mm512_maskz_shuffle_i64x2(0xFF, inLane, inLane, 0x1B);
  }
  [[gnu::always_inline]] static T zero() noexcept { return _mm512_setzero_si512(); }
  [[gnu::always_inline]] static T orv(T a, T b) noexcept { return _mm512_or_si512(a, b); }
  [[gnu::always_inline]] static T crs(T v) noexcept {
    return _mm512_movm_epi8(_mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\r')));
  }
  [[gnu::always_inline]] static T special(T v) noexcept {  // signed: 0x80..0xFF are negative
    return _mm512_movm_epi8(_mm512_cmpgt_epi8_mask(_mm512_set1_epi8('\r' + 1), v));
  }
  [[gnu::always_inline]] static uint64_t mask(T v) noexcept { return _mm512_movepi8_mask(v); }
};
inline void reverseShort(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  avx2::reverseKernel(in, n, out);
}
inline detail::AsciiPrefix reverseAsciiPrefixShort(const unsigned char* in, size_t n,
                                                   unsigned char* outEnd) noexcept {
  return avx2::reverseAsciiPrefixKernel(in, n, outEnd);
}
#include "proto/reverse_bytes_loop.inc"
}  // namespace avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // REVERB_X86

using ReverseFn = void (*)(const unsigned char*, size_t, unsigned char*) noexcept;
using PrefixFn = detail::AsciiPrefix (*)(const unsigned char*, size_t, unsigned char*) noexcept;

struct KernelFns {
  ReverseFn reverse = portable::reverseKernel;
  PrefixFn prefix = portable::reverseAsciiPrefixKernel;
};

KernelFns kernelFunctions(ByteKernel kernel) noexcept {
  switch (kernel) {
    case ByteKernel::kPortable:
      return {portable::reverseKernel, portable::reverseAsciiPrefixKernel};
#if REVERB_X86
    case ByteKernel::kSsse3:
      return {ssse3::reverseKernel, ssse3::reverseAsciiPrefixKernel};
    case ByteKernel::kAvx2:
      return {avx2::reverseKernel, avx2::reverseAsciiPrefixKernel};
    case ByteKernel::kAvx512:
      return {avx512::reverseKernel, avx512::reverseAsciiPrefixKernel};
#else
    default:
      break;
#endif
  }
  return {};
}

struct KernelTable {
  ByteKernel supported[4] = {ByteKernel::kPortable};
  size_t count = 1;
  KernelFns best;
};

KernelTable detectKernels() noexcept {
  KernelTable table;
#if REVERB_X86
  __builtin_cpu_init();  // first use may come from a static constructor
  if (__builtin_cpu_supports("ssse3")) table.supported[table.count++] = ByteKernel::kSsse3;
  if (__builtin_cpu_supports("avx2")) table.supported[table.count++] = ByteKernel::kAvx2;
  // libgcc reports AVX-512 only when the OS also saves the zmm state (XGETBV).
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw")) {
    table.supported[table.count++] = ByteKernel::kAvx512;
  }
#endif
  table.best = kernelFunctions(table.supported[table.count - 1]);
  return table;
}

const KernelTable& kernelTable() noexcept {
  static const KernelTable table = detectKernels();
  return table;
}

// The hot entry points call through these pointers: one load and an indirect call, no guard. Each
// starts at a resolver that looks up the best kernel, stores it and calls it; threads that race
// on the first call store the same value.
void resolveReverse(const unsigned char* in, size_t n, unsigned char* out) noexcept;
detail::AsciiPrefix resolvePrefix(const unsigned char* in, size_t n,
                                  unsigned char* outEnd) noexcept;
constinit std::atomic<ReverseFn> bestReverse{resolveReverse};
constinit std::atomic<PrefixFn> bestPrefix{resolvePrefix};

void resolveReverse(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  const ReverseFn fn = kernelTable().best.reverse;
  bestReverse.store(fn, std::memory_order_relaxed);
  fn(in, n, out);
}

detail::AsciiPrefix resolvePrefix(const unsigned char* in, size_t n,
                                  unsigned char* outEnd) noexcept {
  const PrefixFn fn = kernelTable().best.prefix;
  bestPrefix.store(fn, std::memory_order_relaxed);
  return fn(in, n, outEnd);
}

// The functions of a kernel a caller forces; aborts if the CPU cannot run it.
KernelFns checkedKernel(ByteKernel kernel, const char* caller) noexcept {
  const KernelTable& table = kernelTable();
  for (size_t i = 0; i < table.count; ++i) {
    if (table.supported[i] == kernel) return kernelFunctions(kernel);
  }
  std::fprintf(stderr, "%s: this CPU does not support the %.*s kernel\n", caller,
               static_cast<int>(toString(kernel).size()), toString(kernel).data());
  std::abort();
}

}  // namespace

std::string_view toString(ByteKernel kernel) noexcept {
  switch (kernel) {
    case ByteKernel::kPortable:
      return "portable";
    case ByteKernel::kSsse3:
      return "ssse3";
    case ByteKernel::kAvx2:
      return "avx2";
    case ByteKernel::kAvx512:
      return "avx512";
  }
  return "?";
}

std::span<const ByteKernel> supportedByteKernels() noexcept {
  const KernelTable& table = kernelTable();
  return {table.supported, table.count};
}

ByteKernel activeByteKernel() noexcept {
  return supportedByteKernels().back();
}

void reverseBytes(const char* in, size_t n, char* out) noexcept {
  bestReverse.load(std::memory_order_relaxed)(reinterpret_cast<const unsigned char*>(in), n,
                                              reinterpret_cast<unsigned char*>(out));
}

void reverseBytesWith(ByteKernel kernel, const char* in, size_t n, char* out) noexcept {
  checkedKernel(kernel, "reverseBytesWith")
      .reverse(reinterpret_cast<const unsigned char*>(in), n,
               reinterpret_cast<unsigned char*>(out));
}

namespace detail {

AsciiPrefix reverseAsciiPrefix(const unsigned char* in, size_t n, unsigned char* outEnd) noexcept {
  return bestPrefix.load(std::memory_order_relaxed)(in, n, outEnd);
}

AsciiPrefix reverseAsciiPrefixWith(ByteKernel kernel, const unsigned char* in, size_t n,
                                   unsigned char* outEnd) noexcept {
  return checkedKernel(kernel, "reverseAsciiPrefixWith").prefix(in, n, outEnd);
}

}  // namespace detail

}  // namespace reverb
