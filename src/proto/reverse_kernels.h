// Kernels internal to the reversal units (reverse.cpp), exposed here so tests can force each
// instruction set. Pure functions; thread-safe.
#pragma once

#include <cstddef>

#include "proto/reverse.h"

namespace reverb::detail {

struct AsciiPrefix {
  size_t length;  // bytes before the first byte >= 0x80 (all n if there is none)
  bool hasCr;     // true if in[0, length) holds a CR; may also be true if only later bytes do
};

// Reverses the ASCII prefix of in[0, n) into its mirror positions, in[k] -> outEnd[-1 - k], in
// one pass that also looks for the end of the prefix and for CRs. This is right whatever follows
// the prefix because a unit of one byte always lands at the mirror of its position.
// May also write outEnd[-1 - k] for some k in [length, n), with in[k]: the caller overwrites those
// bytes later, when it writes the units they belong to. Never writes outside outEnd[-n, 0).
AsciiPrefix reverseAsciiPrefix(const unsigned char* in, size_t n, unsigned char* outEnd) noexcept;

// The same with a chosen kernel. Aborts with a message if the CPU does not support it.
AsciiPrefix reverseAsciiPrefixWith(ByteKernel kernel, const unsigned char* in, size_t n,
                                   unsigned char* outEnd) noexcept;

}  // namespace reverb::detail
