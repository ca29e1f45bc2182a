#include "base/hex.h"

#include <algorithm>
#include <cstdio>

namespace reverb {
namespace {

constexpr size_t kRow = 16;

// "6f 6c 6c ..  |oll |": hex for the row's bytes, blanks past the end, then printable ASCII.
std::string formatRow(std::string_view s, size_t start) {
  std::string out;
  char hex[4];
  for (size_t i = 0; i < kRow; ++i) {
    if (start + i < s.size()) {
      std::snprintf(hex, sizeof hex, "%02x ", static_cast<unsigned char>(s[start + i]));
      out += hex;
    } else {
      out += "   ";
    }
  }
  out += '|';
  for (size_t i = 0; i < kRow; ++i) {
    if (start + i < s.size()) {
      auto c = static_cast<unsigned char>(s[start + i]);
      out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
    } else {
      out += ' ';
    }
  }
  out += '|';
  return out;
}

}  // namespace

size_t firstDifference(std::string_view expected, std::string_view actual) noexcept {
  size_t n = std::min(expected.size(), actual.size());
  for (size_t i = 0; i < n; ++i) {
    if (expected[i] != actual[i]) return i;
  }
  return n;
}

std::string formatHexDiff(std::string_view expected, std::string_view actual, size_t maxRows) {
  const size_t first = firstDifference(expected, actual);
  const size_t rows = (std::max(expected.size(), actual.size()) + kRow - 1) / kRow;
  const size_t firstRow = first / kRow > 0 ? first / kRow - 1 : 0;
  const size_t lastRow = std::min(rows, firstRow + std::max<size_t>(maxRows, 1));
  std::string out;
  char head[160];
  std::snprintf(head, sizeof head, "  %-8s %-65s %s\n", "offset", "expected", "received");
  out += head;
  for (size_t row = firstRow; row < lastRow; ++row) {
    const size_t start = row * kRow;
    std::string_view e = start < expected.size() ? expected.substr(start, kRow) : std::string_view();
    std::string_view a = start < actual.size() ? actual.substr(start, kRow) : std::string_view();
    char offset[24];
    std::snprintf(offset, sizeof offset, "%06zx", start);
    out += e == a ? "  " : "* ";
    out += offset;
    out += "   ";
    out += formatRow(expected, start);
    out += ' ';
    out += formatRow(actual, start);
    out += '\n';
  }
  if (lastRow < rows) {
    out += "  (" + std::to_string(rows - lastRow) + " more rows)\n";
  }
  return out;
}

std::string hexPreview(std::string_view s, size_t maxBytes) {
  std::string out;
  char hex[4];
  for (size_t i = 0; i < s.size() && i < maxBytes; ++i) {
    std::snprintf(hex, sizeof hex, i ? " %02x" : "%02x", static_cast<unsigned char>(s[i]));
    out += hex;
  }
  if (s.size() > maxBytes) out += " ...";
  return out;
}

}  // namespace reverb
