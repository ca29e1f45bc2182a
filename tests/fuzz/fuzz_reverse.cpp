// Fuzz target: the reversal units (byte, code point, grapheme cluster) and every byte kernel this
// CPU runs, on arbitrary bytes. Checks, for each unit:
//  - the output is a permutation of the input bytes, of the same length, written into an
//    exact-size buffer (ASan catches a write or read outside it);
//  - it equals the plain reference (tests/proto/reference_reverse.h: utf8proc's decoder and
//    utf8proc's break rule on every pair of code points, no fast path);
//  - byte reversal is its own inverse; code-point reversal is its own inverse on valid UTF-8;
//  - valid UTF-8 stays valid under code-point and grapheme reversal;
// and that every byte kernel (portable, SSSE3, AVX2, AVX-512) and every ASCII-prefix kernel agree
// with the portable one and stay inside their buffers.
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "proto/reference_reverse.h"
#include "proto/reverse.h"
#include "proto/reverse_kernels.h"

namespace {

using reverb::ByteKernel;
using reverb::Unit;

bool isPermutation(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  std::array<int64_t, 256> counts{};
  for (unsigned char c : a) ++counts[c];
  for (unsigned char c : b) --counts[c];
  for (int64_t c : counts) {
    if (c != 0) return false;
  }
  return true;
}

// reverseInto into an exact-size heap buffer, so ASan sees any write past the output.
std::string reverseExact(Unit unit, std::string_view in) {
  std::unique_ptr<char[]> out(new char[in.size()]);
  reverb::reverseInto(unit, in, out.get());
  return {out.get(), in.size()};
}

void checkKernels(std::string_view in) {
  const auto* u = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  std::unique_ptr<char[]> want(new char[n]);
  std::unique_ptr<char[]> got(new char[n]);
  std::unique_ptr<unsigned char[]> wantPrefix(new unsigned char[n]);
  std::unique_ptr<unsigned char[]> gotPrefix(new unsigned char[n]);
  reverb::reverseBytesWith(ByteKernel::kPortable, in.data(), n, want.get());
  for (size_t k = 0; k < n; ++k) FUZZ_CHECK(want[k] == in[n - 1 - k], "portable kernel wrong");
  const reverb::detail::AsciiPrefix base =
      reverb::detail::reverseAsciiPrefixWith(ByteKernel::kPortable, u, n, wantPrefix.get() + n);
  size_t firstHigh = 0;
  while (firstHigh < n && u[firstHigh] < 0x80) ++firstHigh;
  FUZZ_CHECK(base.length == firstHigh, "the ASCII prefix does not end at the first byte >= 0x80");
  const bool crInPrefix = std::memchr(in.data(), '\r', firstHigh) != nullptr;
  FUZZ_CHECK(!crInPrefix || base.hasCr, "a CR in the ASCII prefix was not reported");
  for (ByteKernel kernel : reverb::supportedByteKernels()) {
    reverb::reverseBytesWith(kernel, in.data(), n, got.get());
    FUZZ_CHECK(std::memcmp(got.get(), want.get(), n) == 0, "a byte kernel differs from portable");
    const reverb::detail::AsciiPrefix p =
        reverb::detail::reverseAsciiPrefixWith(kernel, u, n, gotPrefix.get() + n);
    FUZZ_CHECK(p.length == base.length, "an ASCII-prefix kernel found another prefix length");
    FUZZ_CHECK(!crInPrefix || p.hasCr, "an ASCII-prefix kernel missed a CR");
    // The prefix is mirrored: in[k] lands at outEnd[-1 - k].
    for (size_t k = 0; k < p.length; ++k) {
      FUZZ_CHECK(gotPrefix[n - 1 - k] == u[k], "an ASCII-prefix kernel did not mirror the prefix");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool valid = reverb::testing::isValidUtf8(in);
  for (Unit unit : {Unit::kByte, Unit::kCodepoint, Unit::kGrapheme}) {
    const std::string out = reverseExact(unit, in);
    FUZZ_CHECK(out.size() == in.size(), "the output's length differs");
    FUZZ_CHECK(isPermutation(out, in), "the output is not a permutation of the input bytes");
    FUZZ_CHECK(out == reverb::testing::referenceReversed(unit, in),
               "the output differs from the plain reference");
    if (unit == Unit::kByte) {
      FUZZ_CHECK(reverseExact(unit, out) == in, "byte reversal is not its own inverse");
    }
    if (unit == Unit::kCodepoint && valid) {
      FUZZ_CHECK(reverseExact(unit, out) == in, "code-point reversal is not its own inverse");
    }
    if (unit != Unit::kByte && valid) {
      FUZZ_CHECK(reverb::testing::isValidUtf8(out), "valid UTF-8 came out invalid");
    }
  }
  checkKernels(in);
  return 0;
}
