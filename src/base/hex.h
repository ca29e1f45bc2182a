// Hex formatting: how a reply that is not the one expected is shown (reverb-load, the tests).
// Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace reverb {

// Index of the first byte where a and b differ, or min(a.size(), b.size()) when one is a prefix
// of the other (equal strings give their common size).
size_t firstDifference(std::string_view expected, std::string_view actual) noexcept;

// Rows of 16 bytes, expected beside actual, as hex and printable ASCII, rows that differ marked
// with '*'. Shows up to maxRows rows starting one row before the first difference, then a line
// saying how many rows were left out. Ends with a newline.
std::string formatHexDiff(std::string_view expected, std::string_view actual, size_t maxRows = 6);

// One line of hex for up to maxBytes bytes of s ("68 65 6c ..."), with "..." when cut.
std::string hexPreview(std::string_view s, size_t maxBytes = 32);

}  // namespace reverb
