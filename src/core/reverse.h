// Reversal of a message, the one computation the server performs. Pure functions: no I/O, no
// allocation, no shared state; callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace reverb {

// What one reversed "unit" is.
enum class Unit : uint8_t {
  kByte,       // every byte on its own
};

std::string_view toString(Unit unit) noexcept;
// Returns nullopt for an unknown name.
std::optional<Unit> parseUnit(std::string_view name) noexcept;

// Writes the reversal of in[0, n) to out[0, n). out must not overlap in.
void reverseBytes(const char* in, size_t n, char* out) noexcept;

// Writes the reversal of `in` by `unit` to out[0, in.size()); out must not overlap in. The result
// is always a permutation of the input bytes, of the same length.
void reverseInto(Unit unit, std::string_view in, char* out) noexcept;

// Convenience for tests and tools: returns the reversal as a new string.
std::string reversed(Unit unit, std::string_view in);

}  // namespace reverb
