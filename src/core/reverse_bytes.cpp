// Byte reversal kernels and their run-time selection. Each vector kernel is the loop in
// reverse_bytes_loop.inc compiled inside a `#pragma GCC target` region, so the default build needs
// no -m flags and runs on any x86-64; the kernel is picked once from __builtin_cpu_supports.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "reverse.h"

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

void reverseKernel(const unsigned char* in, size_t n, unsigned char* out) noexcept {
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

}  // namespace portable

#if REVERB_X86

// The pshufb control that reverses each 16-byte lane, for every vector width. A load from memory
// rather than _mm_setr_epi8 so unoptimised (debug, sanitizer) builds do not rebuild it per block.
alignas(64) constexpr unsigned char kReverseLanes[64] = {
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  //
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  //
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  //
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};

#pragma GCC push_options
#pragma GCC target("ssse3")
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
};
inline void reverseShort(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  portable::reverseKernel(in, n, out);
}
#include "reverse_bytes_loop.inc"
}  // namespace ssse3
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2")
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
};
// 16..31 bytes take one SSSE3 block and one overlapping one.
inline void reverseShort(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  ssse3::reverseKernel(in, n, out);
}
#include "reverse_bytes_loop.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw")
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
};
inline void reverseShort(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  avx2::reverseKernel(in, n, out);
}
#include "reverse_bytes_loop.inc"
}  // namespace avx512
#pragma GCC pop_options

#endif  // REVERB_X86

using KernelFn = void (*)(const unsigned char*, size_t, unsigned char*) noexcept;

KernelFn kernelFunction(ByteKernel kernel) noexcept {
  switch (kernel) {
    case ByteKernel::kPortable:
      return portable::reverseKernel;
#if REVERB_X86
    case ByteKernel::kSsse3:
      return ssse3::reverseKernel;
    case ByteKernel::kAvx2:
      return avx2::reverseKernel;
    case ByteKernel::kAvx512:
      return avx512::reverseKernel;
#else
    default:
      break;
#endif
  }
  return nullptr;
}

struct KernelTable {
  ByteKernel supported[4] = {ByteKernel::kPortable};
  size_t count = 1;
  KernelFn best = portable::reverseKernel;
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
  table.best = kernelFunction(table.supported[table.count - 1]);
  return table;
}

const KernelTable& kernelTable() noexcept {
  static const KernelTable table = detectKernels();
  return table;
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
  kernelTable().best(reinterpret_cast<const unsigned char*>(in), n,
                     reinterpret_cast<unsigned char*>(out));
}

void reverseBytesWith(ByteKernel kernel, const char* in, size_t n, char* out) noexcept {
  bool supported = false;
  for (ByteKernel k : supportedByteKernels()) supported = supported || k == kernel;
  if (!supported) {
    std::fprintf(stderr, "reverseBytesWith: this CPU does not support the %.*s kernel\n",
                 static_cast<int>(toString(kernel).size()), toString(kernel).data());
    std::abort();
  }
  kernelFunction(kernel)(reinterpret_cast<const unsigned char*>(in), n,
                         reinterpret_cast<unsigned char*>(out));
}

}  // namespace reverb
