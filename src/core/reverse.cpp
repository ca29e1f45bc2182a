#include "reverse.h"

#include <algorithm>

namespace reverb {

std::string_view toString(Unit unit) noexcept {
  switch (unit) {
    case Unit::kByte:
      return "byte";
  }
  return "?";
}

std::optional<Unit> parseUnit(std::string_view name) noexcept {
  if (name == "byte") return Unit::kByte;
  return std::nullopt;
}

void reverseBytes(const char* in, size_t n, char* out) noexcept {
  std::reverse_copy(in, in + n, out);
}

void reverseInto(Unit unit, std::string_view in, char* out) noexcept {
  switch (unit) {
    case Unit::kByte:
      reverseBytes(in.data(), in.size(), out);
      return;
  }
}

std::string reversed(Unit unit, std::string_view in) {
  std::string out(in.size(), '\0');
  reverseInto(unit, in, out.data());
  return out;
}

}  // namespace reverb
