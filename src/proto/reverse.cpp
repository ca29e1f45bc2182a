// Reversal by unit. A unit of one byte (ASCII, or a byte outside any well-formed UTF-8 sequence)
// always lands at the mirror position out[n - 1 - j], so runs of ASCII are reversed in bulk by a
// vector kernel that finds the end of the run as it goes (reverse_kernels.h); only multi-byte units
// and their neighbours take the per-code-point path.
#include "proto/reverse.h"

#include <utf8proc.h>

#include <cstring>

#include "proto/reverse_kernels.h"
#include "proto/utf8.h"

namespace reverb {
namespace {

// Copies one unit in[0, len) to out[0, len). Units are short, so a byte loop beats a memcpy call
// for the common lengths; long clusters (stacked combining marks) go to memcpy. (A fixed 16-byte
// copy that spills below the unit measured slower on code points.)
inline void copyUnit(unsigned char* out, const unsigned char* in, size_t len) noexcept {
  if (len <= 8) {
    for (size_t k = 0; k < len; ++k) out[k] = in[k];
  } else {
    std::memcpy(out, in, len);
  }
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

// Code points from in[i] on; in[0, i) is already written.
[[gnu::noinline]] void reverseCodepointsFrom(const unsigned char* in, size_t n, unsigned char* out,
                                             size_t i) noexcept {
  while (i < n) {
    if (in[i] < 0x80) {
      // A lone ASCII byte between multi-byte characters is copied; a run goes to the kernel.
      if (i + 1 == n || in[i + 1] >= 0x80) {
        out[n - 1 - i] = in[i];
        ++i;
        continue;
      }
      i += detail::reverseAsciiPrefix(in + i, n - i, out + n - i).length;
      continue;
    }
    const utf8::Decoded d = utf8::decode(in + i, n - i);
    const size_t len = d.length == 0 ? 1 : d.length;
    copyUnit(out + n - i - len, in + i, len);
    i += len;
  }
}

// Most text is all ASCII: then one kernel pass is the whole job, with no per-character loop.
void reverseCodepoints(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  const size_t head = detail::reverseAsciiPrefix(in, n, out + n).length;
  if (head < n) reverseCodepointsFrom(in, n, out, head);
}

// Grapheme clusters: boundaries from utf8proc_grapheme_break_stateful, called in order on every
// pair of code points, with its state reset after each break (which its contract allows). Two
// shortcuts skip the call where UAX #29 leaves no choice:
// - Two ASCII bytes always have a break between them unless they are CR LF (GB3, GB4, GB5,
//   GB999), so an ASCII run that starts at a boundary is reversed in bulk up to, but not
//   including, its last byte, which may still join what follows (GB9: "e" + U+0301).
// - Before a code point of class Other there is always a break unless the code point before it
//   is a Prepend (GB9b): every other rule that forbids a break needs the second code point to be
//   LF, Extend, ZWJ, SpacingMark, a Hangul jamo or syllable, a regional indicator or an
//   Extended_Pictographic (GB3, GB6-GB9a, GB11-GB13). utf8proc's state, which stands in for the
//   code point before, is a Prepend only when that code point is one.

// The Grapheme_Cluster_Break class (utf8proc's boundclass) of every code point of the BMP and of
// U+1F000..U+1FFFF (emoji, regional indicators), copied from utf8proc once, at first use: a
// one-byte load instead of a library call and its two dependent table loads, which were a third
// of the time on non-ASCII text. 68 KiB of static storage; other planes ask utf8proc.
class BoundClasses {
 public:
  BoundClasses() noexcept {
    for (int32_t cp = 0; cp < 0x10000; ++cp) bmp_[cp] = lookUp(cp);
    for (int32_t k = 0; k < 0x1000; ++k) emoji_[k] = lookUp(kEmojiBase + k);
  }
  int of(int32_t cp) const noexcept {
    if (cp < 0x10000) return bmp_[cp];
    // Both bounds: below the emoji block, cp - kEmojiBase is negative and would index bmp_.
    if (cp >= kEmojiBase && cp < kEmojiBase + 0x1000) return emoji_[cp - kEmojiBase];
    return lookUp(cp);
  }

 private:
  static constexpr int32_t kEmojiBase = 0x1F000;
  static uint8_t lookUp(int32_t cp) noexcept {
    return static_cast<uint8_t>(utf8proc_get_property(cp)->boundclass);
  }
  uint8_t bmp_[0x10000];
  uint8_t emoji_[0x1000];
};

const BoundClasses& boundClasses() noexcept {
  static const BoundClasses table;
  return table;
}

// Where the bulk part of the ASCII run in[i, runEnd) ends, for a run that starts at a cluster
// boundary: the run's last byte stays out unless the input ends there, and so does a CR before
// it if that last byte is its LF. The result may be i (nothing in bulk).
size_t bulkEnd(const unsigned char* in, size_t n, size_t i, size_t runEnd) noexcept {
  if (runEnd == n || runEnd == i) return runEnd;
  size_t end = runEnd - 1;
  if (end > i && in[end - 1] == '\r' && in[end] == '\n') --end;
  return end;
}

// Clusters from in[i] on, where a cluster starts; in[0, i) is already written.
[[gnu::noinline]] void reverseGraphemesFrom(const unsigned char* in, size_t n, unsigned char* out,
                                            size_t i) noexcept {
  constexpr int32_t kNone = -1;
  const BoundClasses& classes = boundClasses();
  size_t start = i;      // first byte of the open cluster; the cluster is in[start, i)
  int32_t last = kNone;  // last code point of the open cluster, kNone if none is open
  int lastClass = 0;     // its utf8proc boundclass
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
      // A run of one byte may join what follows: it takes the per-code-point path below.
      const bool loneByte = i + 1 < n && in[i + 1] >= 0x80;
      if (!loneByte) {
        // Every byte of the run is written to its mirror; bytes past `end` are written again
        // below, with the clusters they belong to.
        const detail::AsciiPrefix run = detail::reverseAsciiPrefix(in + i, n - i, out + n - i);
        const size_t end = bulkEnd(in, n, i, i + run.length);
        if (end > i) {
          if (run.hasCr) restoreCrLf(out + n - end, end - i);
          i = end;
          start = end;
          continue;
        }
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
    const int cls = classes.of(cp);
    if (last != kNone) {
      const bool surelyBreak =
          cls == UTF8PROC_BOUNDCLASS_OTHER && lastClass != UTF8PROC_BOUNDCLASS_PREPEND;
      if (surelyBreak || utf8proc_grapheme_break_stateful(last, cp, &state)) {
        copyUnit(out + n - i, in + start, i - start);
        start = i;
        state = 0;
      }
    }
    last = cp;
    lastClass = cls;
    i += d.length;
  }
  closeCluster();
}

// Most text is all ASCII: then one kernel pass (and a CR LF fix-up if it holds a CR) is the whole
// job, with no per-character loop.
void reverseGraphemes(const unsigned char* in, size_t n, unsigned char* out) noexcept {
  const detail::AsciiPrefix head = detail::reverseAsciiPrefix(in, n, out + n);
  const size_t end = bulkEnd(in, n, 0, head.length);
  if (head.hasCr) restoreCrLf(out + n - end, end);
  if (end < n) reverseGraphemesFrom(in, n, out, end);
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
