// The reversal units computed the plain way, with no fast path and a UTF-8 decoder that is not
// reverb's (utf8proc_iterate): what reverse.cpp must equal. Shared by the reversal tests and the
// reversal fuzzer (tests/fuzz/fuzz_reverse.cpp). Header only; pure; thread-safe.
#pragma once

#include <utf8proc.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "proto/reverse.h"

namespace reverb::testing {

inline bool isValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t len =
        utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (len <= 0) return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

// Reference segmentation with no fast path: decode every unit with utf8proc, ask utf8proc about
// every pair of code points, make each ill-formed byte a unit of its own. Returns where each unit
// starts, then s.size().
inline std::vector<size_t> referenceUnitStarts(Unit unit, std::string_view s) {
  std::vector<size_t> starts;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_int32_t last = -1;
  utf8proc_int32_t state = 0;
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t len =
        utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (unit == Unit::kByte || len <= 0) {
      starts.push_back(i);
      last = -1;
      state = 0;
      ++i;
      continue;
    }
    bool join =
        unit == Unit::kGrapheme && last >= 0 && !utf8proc_grapheme_break_stateful(last, cp, &state);
    if (!join) {
      starts.push_back(i);
      state = 0;
    }
    last = cp;
    i += static_cast<size_t>(len);
  }
  starts.push_back(s.size());
  return starts;
}

inline std::string referenceReversed(Unit unit, std::string_view s) {
  std::vector<size_t> starts = referenceUnitStarts(unit, s);
  std::string out(s.size(), '\0');
  for (size_t u = 0; u + 1 < starts.size(); ++u) {
    size_t len = starts[u + 1] - starts[u];
    std::memcpy(out.data() + s.size() - starts[u + 1], s.data() + starts[u], len);
  }
  return out;
}

}  // namespace reverb::testing
