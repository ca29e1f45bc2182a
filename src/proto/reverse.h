// Reversal of a message, the one computation the server performs, by bytes, code points or
// grapheme clusters. Pure functions: no I/O, no allocation, no shared state but the byte kernel
// chosen at first use; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace reverb {

// What one reversed "unit" is. In every unit, a byte that is not part of a well-formed UTF-8
// sequence is a unit of its own, so the result is always a permutation of the input bytes.
enum class Unit : uint8_t {
  kByte,       // every byte on its own
  kCodepoint,  // every Unicode code point (a well-formed UTF-8 sequence of 1 to 4 bytes)
  kGrapheme,   // every extended grapheme cluster (UAX #29, Unicode 15.0 via utf8proc)
};

std::string_view toString(Unit unit) noexcept;
// Returns nullopt for an unknown name ("byte", "codepoint" and "grapheme" are known).
std::optional<Unit> parseUnit(std::string_view name) noexcept;

// Writes the reversal of in[0, n) to out[0, n). out must not overlap in. Uses the fastest byte
// kernel this CPU supports (activeByteKernel()).
void reverseBytes(const char* in, size_t n, char* out) noexcept;

// Writes the reversal of `in` by `unit` to out[0, in.size()); out must not overlap in. The result
// is always a permutation of the input bytes, of the same length; valid UTF-8 in gives valid
// UTF-8 out for kCodepoint and kGrapheme.
void reverseInto(Unit unit, std::string_view in, char* out) noexcept;

// Convenience for tests and tools: returns the reversal as a new string.
std::string reversed(Unit unit, std::string_view in);

// The byte-reversal kernels, one per instruction set. The best one the CPU runs is picked once, at
// first use, with __builtin_cpu_supports; the others stay callable so tests can force each path.
enum class ByteKernel : uint8_t {
  kPortable,  // 8-byte swaps; right on any CPU
  kSsse3,     // 16-byte pshufb
  kAvx2,      // 32-byte vpshufb + vpermq
  kAvx512,    // 64-byte vpshufb + vshufi64x2 (AVX-512BW)
};

std::string_view toString(ByteKernel kernel) noexcept;
// The kernels this CPU runs, kPortable first, best last. Never empty.
std::span<const ByteKernel> supportedByteKernels() noexcept;
// The kernel reverseBytes() uses: the last of supportedByteKernels().
ByteKernel activeByteKernel() noexcept;
// reverseBytes() with a chosen kernel. Aborts with a message if the CPU does not support it.
void reverseBytesWith(ByteKernel kernel, const char* in, size_t n, char* out) noexcept;

}  // namespace reverb
