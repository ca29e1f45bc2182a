// Reversal by unit. A unit of one byte (ASCII, or a byte outside any well-formed UTF-8 sequence)
// always lands at the mirror position out[n - 1 - j], so runs of ASCII are reversed in bulk by the
// byte kernel; only multi-byte units and their neighbours take the per-code-point path.
#include "reverse.h"

#include <utf8proc.h>

#include <cstring>

#include "utf8.h"

namespace reverb {
namespace {

// Copies one unit in[0, len) to out[0, len). Units are short, so a byte loop beats a memcpy call
// for the common lengths; long clusters (stacked combining marks) go to memcpy.
inline void copyUnit(unsigned char* out, const unsigned char* in, size_t len) noexcept {
  if (len <= 8) {
    for (size_t k = 0; k < len; ++k) out[k] = in[k];
  } else {
    std::memcpy(out, in, len);
  }
}

inline void reverseRun(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  reverseBytes(reinterpret_cast<const char*>(in), n, reinterpret_cast<char*>(out));
}

// After a byte-wise reversal of ASCII text, every CR LF of the input reads LF CR; puts it back in
// order, since CR LF is one grapheme cluster. An LF CR of the output cannot come from anything
// else, and two such pairs cannot overlap.
void restoreCrLf(unsigned char* out, size_t n) noexcept {
  size_t k = 1;
  while (k < n) {
    const void* found = std::memchr(out + k, '\r', n - k);
    if (found == nullptr) return;
    k = static_cast<size_t>(static_cast<const unsigned char*>(found) - out);
    if (out[k - 1] == '\n') {
      out[k - 1] = '\r';
      out[k] = '\n';
      ++k;  // out[k] is now the LF just written; it cannot start another pair
    }
    ++k;
  }
}

void reverseCodepoints(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  size_t i = 0;
  while (i < n) {
    if (in[i] < 0x80) {
      // A lone ASCII byte between multi-byte characters is copied; a run goes to the byte kernel.
      if (i + 1 == n || in[i + 1] >= 0x80) {
        out[n - 1 - i] = in[i];
        ++i;
        continue;
      }
      const size_t run = utf8::scanAscii(in + i, n - i).length;
      reverseRun(in + i, run, out + n - i - run);
      i += run;
      continue;
    }
    const utf8::Decoded d = utf8::decode(in + i, n - i);
    const size_t len = d.length == 0 ? 1 : d.length;
    copyUnit(out + n - i - len, in + i, len);
    i += len;
  }
}

// Grapheme clusters: boundaries from utf8proc_grapheme_break_stateful, called in order on every
// pair of code points, with its state reset after each break (which its contract allows). Two
// ASCII bytes always have a break between them unless they are CR LF (GB3, GB4, GB5, GB999), so
// an ASCII run that starts at a boundary is reversed in bulk up to, but not including, its last
// byte, which may still join what follows (GB9: "e" + U+0301).
void reverseGraphemes(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  constexpr int32_t kNone = -1;
  size_t i = 0;
  size_t start = 0;      // first byte of the open cluster; the cluster is in[start, i)
  int32_t last = kNone;  // last code point of the open cluster, kNone if none is open
  int32_t state = 0;     // utf8proc's break state
  auto closeCluster = [&]() noexcept {
    if (start < i) copyUnit(out + n - i, in + start, i - start);
    start = i;
    last = kNone;
    state = 0;
  };
  while (i < n) {
    const unsigned char b = in[i];
    if (b < 0x80 && (last == kNone || (last < 0x80 && !(last == '\r' && b == '\n')))) {
      closeCluster();  // a break before in[i]
      const utf8::AsciiRun run = utf8::scanAscii(in + i, n - i);
      size_t end = i + run.length;
      if (end < n) {
        --end;  // the run's last byte may join the non-ASCII character after it
        if (end > i && in[end - 1] == '\r' && in[end] == '\n') --end;  // keep CR with its LF
      }
      if (end > i) {
        unsigned char* dst = out + n - end;
        reverseRun(in + i, end - i, dst);
        if (run.hasCr) restoreCrLf(dst, end - i);
        i = end;
        start = end;
        continue;
      }
    }
    const utf8::Decoded d = utf8::decode(in + i, n - i);
    if (d.length == 0) {
      // An ill-formed byte is a cluster of its own: break before and after it.
      closeCluster();
      out[n - 1 - i] = b;
      ++i;
      start = i;
      continue;
    }
    const auto cp = static_cast<int32_t>(d.codepoint);
    if (last != kNone && utf8proc_grapheme_break_stateful(last, cp, &state)) {
      copyUnit(out + n - i, in + start, i - start);
      start = i;
      state = 0;
    }
    last = cp;
    i += d.length;
  }
  closeCluster();
}

}  // namespace

std::string_view toString(Unit unit) noexcept {
  switch (unit) {
    case Unit::kByte:
      return "byte";
    case Unit::kCodepoint:
      return "codepoint";
    case Unit::kGrapheme:
      return "grapheme";
  }
  return "?";
}

std::optional<Unit> parseUnit(std::string_view name) noexcept {
  if (name == "byte") return Unit::kByte;
  if (name == "codepoint") return Unit::kCodepoint;
  if (name == "grapheme") return Unit::kGrapheme;
  return std::nullopt;
}

void reverseInto(Unit unit, std::string_view in, char* out) noexcept {
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  auto* dst = reinterpret_cast<unsigned char*>(out);
  switch (unit) {
    case Unit::kByte:
      reverseBytes(in.data(), in.size(), out);
      return;
    case Unit::kCodepoint:
      reverseCodepoints(src, in.size(), dst);
      return;
    case Unit::kGrapheme:
      reverseGraphemes(src, in.size(), dst);
      return;
  }
}

std::string reversed(Unit unit, std::string_view in) {
  std::string out(in.size(), '\0');
  reverseInto(unit, in, out.data());
  return out;
}

}  // namespace reverb
