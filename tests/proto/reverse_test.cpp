// Reversal by byte, code point and grapheme cluster: every byte kernel against std::reverse, the
// properties every unit keeps on random input, the fast paths against a plain reference, and the
// grapheme unit against Unicode's own GraphemeBreakTest.txt.
#include "proto/reverse.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/hex.h"
#include "proto/reference_reverse.h"
#include "proto/reverse_kernels.h"

namespace reverb {
namespace {

using namespace std::string_literals;
using testing::isValidUtf8;
using testing::referenceReversed;

// Every byte as hex, so that a failed comparison shows where two byte strings differ.
std::string hex(std::string_view s) { return hexPreview(s, s.size()); }

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

// While alive, ThreadSanitizer ignores this thread's memory accesses. For single-threaded tests
// that make hundreds of thousands of calls: there is no race for TSan to find in them, and its
// shadow-memory bookkeeping would make them take minutes. ASan still checks every access.
class TsanIgnoreScope {
 public:
  TsanIgnoreScope() {
#if defined(__SANITIZE_THREAD__)
    __tsan_ignore_thread_begin();
#endif
  }
  ~TsanIgnoreScope() {
#if defined(__SANITIZE_THREAD__)
    __tsan_ignore_thread_end();
#endif
  }
  TsanIgnoreScope(const TsanIgnoreScope&) = delete;
  TsanIgnoreScope& operator=(const TsanIgnoreScope&) = delete;
};

// --- Threads first, so the kernel table is also first used from several threads at once. ---

TEST(ReverseTest, ConcurrentCallsFromManyThreadsAgree) {
  const std::string text = "a\u0301 \U0001F1EB\U0001F1F7 \U0001F469\u200D\U0001F467 \r\n x"s;
  const std::string want[] = {std::string(text.rbegin(), text.rend()),
                              referenceReversed(Unit::kCodepoint, text),
                              referenceReversed(Unit::kGrapheme, text)};
  std::vector<std::thread> threads;
  std::array<int, 4> mismatches{};
  for (size_t t = 0; t < mismatches.size(); ++t) {
    threads.emplace_back([&, t] {
      std::string out(text.size(), '\0');
      for (int round = 0; round < 500; ++round) {
        for (Unit u : {Unit::kByte, Unit::kCodepoint, Unit::kGrapheme}) {
          reverseInto(u, text, out.data());
          if (out != want[static_cast<int>(u)]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(ReverseTest, UnitNamesRoundTrip) {
  for (Unit u : {Unit::kByte, Unit::kCodepoint, Unit::kGrapheme}) {
    auto parsed = parseUnit(toString(u));
    ASSERT_TRUE(parsed.has_value()) << toString(u);
    EXPECT_EQ(*parsed, u);
  }
  EXPECT_EQ(toString(Unit::kGrapheme), "grapheme");
  EXPECT_FALSE(parseUnit("char").has_value());
  EXPECT_FALSE(parseUnit("").has_value());
  EXPECT_FALSE(parseUnit("Byte").has_value());
}

// --- Byte kernels ---

TEST(ByteKernelTest, PortableFirstActiveLast) {
  auto kernels = supportedByteKernels();
  ASSERT_FALSE(kernels.empty());
  EXPECT_EQ(kernels.front(), ByteKernel::kPortable);
  EXPECT_EQ(activeByteKernel(), kernels.back());
#if defined(__x86_64__)
  // What the test below covers on this machine, in its log.
  std::string names;
  for (ByteKernel k : kernels) names += std::string(toString(k)) + " ";
  std::printf("byte kernels this CPU runs: %s\n", names.c_str());
#endif
}

// Every kernel the CPU runs equals std::reverse at every length 0..4096, with the input at every
// alignment 0..63 and the output at a varying one, and writes nothing outside its output.
TEST(ByteKernelTest, EqualsStdReverseAtEveryLengthAndAlignment) {
  constexpr size_t kMaxLen = 4096;
  constexpr size_t kAlign = 64;
  constexpr size_t kGuard = 32;
  constexpr size_t kSrcLen = kMaxLen + kAlign;
  std::mt19937_64 rng(42);
  // 64-byte aligned storage so an offset is an alignment.
  alignas(64) static std::array<char, kSrcLen> src;
  alignas(64) static std::array<char, kSrcLen> reference;
  alignas(64) static std::array<char, kGuard + kSrcLen + kGuard> dst;
  std::array<char, kGuard> guard;
  guard.fill(0x5A);
  for (char& c : src) c = static_cast<char>(rng());
  std::copy(src.begin(), src.end(), reference.begin());
  std::reverse(reference.begin(), reference.end());

  TsanIgnoreScope tsanIgnore;
  for (ByteKernel kernel : supportedByteKernels()) {
    SCOPED_TRACE(std::string(toString(kernel)));
    size_t failures = 0;
    for (size_t len = 0; len <= kMaxLen && failures < 5; ++len) {
      for (size_t a = 0; a < kAlign; ++a) {
        size_t b = (a * 7 + len) % kAlign;  // output alignment, varying with both
        char* out = dst.data() + kGuard + b;
        std::memset(out - kGuard, 0x5A, kGuard);
        std::memset(out + len, 0x5A, kGuard);
        reverseBytesWith(kernel, src.data() + a, len, out);
        // src[a, a+len) reversed is reference[kSrcLen-a-len, kSrcLen-a).
        bool ok = std::memcmp(out, reference.data() + kSrcLen - a - len, len) == 0 &&
                  std::memcmp(out - kGuard, guard.data(), kGuard) == 0 &&
                  std::memcmp(out + len, guard.data(), kGuard) == 0;
        if (!ok) {
          ADD_FAILURE() << "len=" << len << " input alignment=" << a << " output alignment=" << b;
          ++failures;
        }
      }
    }
  }
}

// Exactly sized heap buffers, so AddressSanitizer sees any read or write past either end.
TEST(ByteKernelTest, TouchesOnlyItsBuffers) {
  std::mt19937_64 rng(3);
  for (ByteKernel kernel : supportedByteKernels()) {
    for (size_t len = 0; len <= 300; ++len) {
      std::vector<char> in(len);
      for (char& c : in) c = static_cast<char>(rng());
      std::vector<char> out(len);
      reverseBytesWith(kernel, in.data(), len, out.data());
      ASSERT_TRUE(std::equal(in.rbegin(), in.rend(), out.begin()))
          << toString(kernel) << " len=" << len;
      // The ASCII-prefix kernel reads all of an all-ASCII input.
      for (char& c : in) c = static_cast<char>(c & 0x7F);
      auto* bytes = reinterpret_cast<const unsigned char*>(in.data());
      auto* outEnd = reinterpret_cast<unsigned char*>(out.data()) + len;
      ASSERT_EQ(detail::reverseAsciiPrefixWith(kernel, bytes, len, outEnd).length, len);
      ASSERT_TRUE(std::equal(in.rbegin(), in.rend(), out.begin()))
          << toString(kernel) << " len=" << len;
    }
  }
}

// The fused ASCII-prefix kernel, on every kernel the CPU runs: the prefix length is exact, every
// prefix byte is at its mirror, a CR in the prefix is reported, and nothing outside outEnd[-n, 0)
// is written. The input has ASCII up to a random point, then a random byte >= 0x80.
TEST(ByteKernelTest, AsciiPrefixKernelFindsTheRunAndMirrorsIt) {
  constexpr size_t kGuard = 32;
  std::mt19937_64 rng(5);
  std::vector<unsigned char> in(700);
  std::vector<unsigned char> out(kGuard + in.size() + kGuard);
  std::vector<unsigned char> guard(kGuard, 0x5A);
  for (ByteKernel kernel : supportedByteKernels()) {
    SCOPED_TRACE(std::string(toString(kernel)));
    for (int iter = 0; iter < 4000; ++iter) {
      const size_t n = rng() % (iter < 2000 ? 80 : in.size());
      const size_t high = rng() % 4 == 0 ? n : (n == 0 ? 0 : rng() % n);  // n: all ASCII
      for (size_t k = 0; k < n; ++k) {
        static constexpr unsigned char kControls[] = {'\r', '\n', '\t', 0, 0x0C, 0x0E, 0x1F};
        in[k] = rng() % 8 == 0 ? kControls[rng() % sizeof kControls]
                               : static_cast<unsigned char>(0x20 + rng() % 95);
      }
      if (high < n) in[high] = static_cast<unsigned char>(0x80 + rng() % 128);
      // Sometimes no CR at all in the prefix.
      if (rng() % 2 == 0) {
        for (size_t k = 0; k < high; ++k) in[k] = in[k] == '\r' ? 'r' : in[k];
      }
      std::fill(out.begin(), out.end(), 0x5A);
      unsigned char* outEnd = out.data() + kGuard + n;
      detail::AsciiPrefix got = detail::reverseAsciiPrefixWith(kernel, in.data(), n, outEnd);
      ASSERT_EQ(got.length, high) << "n=" << n;
      bool crInPrefix = std::find(in.begin(), in.begin() + static_cast<ptrdiff_t>(high), '\r') !=
                        in.begin() + static_cast<ptrdiff_t>(high);
      if (crInPrefix) {
        ASSERT_TRUE(got.hasCr) << "n=" << n << " prefix " << high;
      }
      for (size_t k = 0; k < high; ++k) {
        ASSERT_EQ(*(outEnd - 1 - k), in[k]) << "n=" << n << " k=" << k;
      }
      ASSERT_TRUE(std::equal(guard.begin(), guard.end(), out.begin())) << "wrote before, n=" << n;
      ASSERT_TRUE(std::equal(guard.begin(), guard.end(), outEnd)) << "wrote after, n=" << n;
    }
  }
}

// --- Properties on random input ---

enum class Flavor { kAscii, kValidMixed, kWithInvalid };

// Pieces of real text: ASCII with CR and LF, 2-, 3- and 4-byte characters, combining marks, ZWJ
// sequences, regional indicators, skin tones, Hangul jamo, prepend and spacing marks.
const std::vector<std::string>& validPieces() {
  // clang-format off
  static const std::vector<std::string> pieces = {
      "a", "Z", " ", "0", "\r", "\n", "\r\n", "\t",
      "\u00e9", "\u00f1", "\u00df", "\u0416",                        // 2-byte: é ñ ß Ж
      "\u0301", "\u0308", "\u20db",                                  // combining marks
      "\u4e2d", "\u20ac", "\ud55c", "\u0e01",                        // 3-byte: 中 € 한 ก
      "\u1100", "\u1161", "\u11a8", "\uac00",                        // Hangul L V T LV
      "\u200d", "\ufe0f", "\u0600", "\u0903",                        // ZWJ VS16 prepend spacing
      "\U0001F600", "\U0001F469", "\U0001F467", "\U0001F3FD",        // 4-byte: 😀 👩 👧 🏽
      "\U0001F1EB", "\U0001F1F7", "\U0001F1E9", "\U0001F1EA",        // regional indicators
      "\U0001F469\u200D\U0001F469\u200D\U0001F467",                  // family
      "\U0001F44D\U0001F3FD",                                        // thumbs up, medium skin
      "\u00a9",                                                      // © (Extended_Pictographic)
  };
  // clang-format on
  return pieces;
}

const std::vector<std::string>& invalidPieces() {
  static const std::vector<std::string> pieces = {
      "\x80",     "\xbf",         "\xc0",     "\xc1\xbf",     "\xc3",
      "\xe2\x82", "\xed\xa0\x80", "\xf0\x9f", "\xf0\x9f\x98", "\xf4\x90\x80\x80",
      "\xf5",     "\xfe",         "\xff",     "\xe0\x80\x80",
  };
  return pieces;
}

std::string randomText(std::mt19937_64& rng, Flavor flavor, size_t pieces) {
  std::string s;
  for (size_t k = 0; k < pieces; ++k) {
    if (flavor == Flavor::kAscii) {
      uint64_t r = rng() % 100;
      s += r < 3 ? '\r' : r < 6 ? '\n' : static_cast<char>(0x20 + rng() % 95);
      continue;
    }
    uint64_t r = rng() % 100;
    if (r < 40) {
      // Runs of ASCII of every length, so the bulk path starts and ends everywhere.
      size_t run = rng() % 40;
      for (size_t c = 0; c < run; ++c) s += static_cast<char>(0x20 + rng() % 95);
    } else if (flavor == Flavor::kWithInvalid && r < 55) {
      if (rng() % 2) {
        s += invalidPieces()[rng() % invalidPieces().size()];
      } else {
        s += static_cast<char>(0x80 + rng() % 128);
      }
    } else {
      s += validPieces()[rng() % validPieces().size()];
    }
  }
  return s;
}

// Same length and the same count of every byte value.
bool isPermutation(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  std::array<int, 256> counts{};
  for (unsigned char c : a) ++counts[c];
  for (unsigned char c : b) --counts[c];
  for (int c : counts) {
    if (c != 0) return false;
  }
  return true;
}

void checkProperties(Flavor flavor, int iterations, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < iterations; ++iter) {
    std::string in = randomText(rng, flavor, rng() % 60);
    bool valid = isValidUtf8(in);
    if (flavor != Flavor::kWithInvalid) {
      ASSERT_TRUE(valid) << hex(in);
    }
    for (Unit unit : {Unit::kByte, Unit::kCodepoint, Unit::kGrapheme}) {
      std::string out = reversed(unit, in);
      // Built only when an assertion fails: hex dumps would dominate the run time otherwise.
      auto context = [&] {
        return "unit " + std::string(toString(unit)) + " seed " + std::to_string(seed) +
               "\n input  " + hex(in) + "\n output " + hex(out);
      };
      ASSERT_EQ(out.size(), in.size()) << context();
      ASSERT_TRUE(isPermutation(out, in)) << "not a permutation: " << context();
      ASSERT_EQ(out, referenceReversed(unit, in)) << context();
      if (valid && unit != Unit::kByte) {
        ASSERT_TRUE(isValidUtf8(out)) << context();
      }
      if (unit == Unit::kByte) {
        ASSERT_EQ(reversed(Unit::kByte, out), in) << context();
      }
      if (unit == Unit::kCodepoint && valid) {
        ASSERT_EQ(reversed(Unit::kCodepoint, out), in) << context();
      }
    }
  }
}

TEST(ReversePropertyTest, Ascii) {
  checkProperties(Flavor::kAscii, 1500, 1);
}
TEST(ReversePropertyTest, ValidMixedUtf8) {
  checkProperties(Flavor::kValidMixed, 1500, 2);
}
TEST(ReversePropertyTest, WithInvalidBytes) {
  checkProperties(Flavor::kWithInvalid, 1500, 3);
}

// Long inputs cross the 64-byte steps of the ASCII scanner and the kernels' unrolled loops.
TEST(ReversePropertyTest, LongMixedTextMatchesReference) {
  std::mt19937_64 rng(4);
  for (int iter = 0; iter < 40; ++iter) {
    std::string in = randomText(rng, iter % 2 ? Flavor::kWithInvalid : Flavor::kValidMixed, 400);
    for (Unit unit : {Unit::kCodepoint, Unit::kGrapheme}) {
      ASSERT_EQ(reversed(unit, in), referenceReversed(unit, in))
          << toString(unit) << " " << hex(in);
    }
  }
}

// --- Examples, in the words of docs/PROTOCOL.md ---

struct Example {
  const char* what;
  std::string in;
  std::string byte, codepoint, grapheme;  // empty: not checked for that unit
};

TEST(ReverseTest, Examples) {
  const Example examples[] = {
      {"ascii", "hello", "olleh", "olleh", "olleh"},
      {"precomposed e-acute", "h\u00e9llo", "oll\xa9\xc3h", "oll\u00e9h", "oll\u00e9h"},
      {"e + combining acute", "he\u0301llo",
       "oll\x81\xcc"
       "eh",
       "oll\u0301eh", "olle\u0301h"},
      {"flags", "\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA", "",
       "\U0001F1EA\U0001F1E9\U0001F1F7\U0001F1EB", "\U0001F1E9\U0001F1EA\U0001F1EB\U0001F1F7"},
      {"family", "a\U0001F469\u200D\U0001F469\u200D\U0001F467b", "",
       "b\U0001F467\u200D\U0001F469\u200D\U0001F469a",
       "b\U0001F469\u200D\U0001F469\u200D\U0001F467a"},
      {"skin tone", "\U0001F44D\U0001F3FD!", "", "!\U0001F3FD\U0001F44D", "!\U0001F44D\U0001F3FD"},
      {"hangul jamo", "\u1100\u1161\u11a8x", "", "x\u11a8\u1161\u1100", "x\u1100\u1161\u11a8"},
      {"CR LF", "a\r\nb", "b\n\ra", "b\n\ra", "b\r\na"},
      {"CR LF CR LF", "\r\n\r\n", "\n\r\n\r", "\n\r\n\r", "\r\n\r\n"},
      {"CR CR LF", "x\r\r\ny", "y\n\r\rx", "", "y\r\n\rx"},
      {"invalid bytes", "a\xff\xc3z\xe2\x82",
       "\x82\xe2z\xc3\xff"
       "a",
       "\x82\xe2z\xc3\xff"
       "a",
       "\x82\xe2z\xc3\xff"
       "a"},
      {"invalid byte then combining mark", "\xff\u0301", "", "\u0301\xff", "\u0301\xff"},
      {"prepend joins ASCII", "\u06001x", "", "x1\u0600", "x\u06001"},
      {"empty", "", "", "", ""},
  };
  for (const Example& e : examples) {
    SCOPED_TRACE(e.what);
    if (!e.byte.empty()) {
      EXPECT_EQ(hex(reversed(Unit::kByte, e.in)), hex(e.byte));
    }
    if (!e.codepoint.empty()) {
      EXPECT_EQ(hex(reversed(Unit::kCodepoint, e.in)), hex(e.codepoint));
    }
    if (!e.grapheme.empty() || e.in.empty()) {
      EXPECT_EQ(hex(reversed(Unit::kGrapheme, e.in)), hex(e.grapheme));
    }
  }
}

// --- Unicode's own test data ---

constexpr const char* kGraphemeBreakTest = "/usr/share/unicode/auxiliary/GraphemeBreakTest.txt";

void appendUtf8(std::string& s, char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  s.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// Every line of GraphemeBreakTest.txt: reversing the line gives its clusters in reverse order.
TEST(GraphemeBreakTest, EveryLineOfUnicodeTestDataReversesByCluster) {
  std::ifstream file(kGraphemeBreakTest);
  ASSERT_TRUE(file.is_open()) << kGraphemeBreakTest
                              << " is missing: install Debian's unicode-data package "
                                 "(scripts/setup does)";
  std::string line;
  size_t lines = 0;
  size_t number = 0;
  while (std::getline(file, line)) {
    ++number;
    line = line.substr(0, line.find('#'));
    std::istringstream tokens(line);
    std::vector<std::string> clusters;
    std::string token;
    bool open = false;
    while (tokens >> token) {
      if (token == "\u00f7") {  // ÷ break
        open = false;
      } else if (token == "\u00d7") {  // × no break
        open = true;
      } else {
        char32_t cp = static_cast<char32_t>(std::stoul(token, nullptr, 16));
        if (cp >= 0xD800 && cp <= 0xDFFF) {
          // A surrogate has no UTF-8 form; its generalised UTF-8 bytes are ill-formed, each a
          // unit of its own (a surrogate is a Control, so it is a cluster of its own anyway).
          ASSERT_FALSE(open) << "line " << number << ": surrogate joined to a cluster";
          std::string bytes;
          bytes += static_cast<char>(0xE0 | (cp >> 12));
          bytes += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          bytes += static_cast<char>(0x80 | (cp & 0x3F));
          for (char b : bytes) clusters.emplace_back(1, b);
          continue;
        }
        if (!open || clusters.empty()) clusters.emplace_back();
        appendUtf8(clusters.back(), cp);
        open = false;
      }
    }
    if (clusters.empty()) continue;
    ++lines;
    std::string in;
    std::string want;
    for (const auto& c : clusters) in += c;
    for (auto it = clusters.rbegin(); it != clusters.rend(); ++it) want += *it;
    ASSERT_EQ(hex(reversed(Unit::kGrapheme, in)), hex(want))
        << "GraphemeBreakTest.txt line " << number << ": " << line;
  }
  // Unicode 15.0's file has 602 test lines; a file with none would prove nothing.
  EXPECT_GE(lines, 600u);
}

// Found by fuzz_reverse (its input is tests/fuzz/corpus/reverse/regress-smp-spacing-mark): the
// table of cluster-break classes looked every code point from U+10000 to U+1EFFF up at a negative
// index of its emoji part, that is in its BMP part, so U+11347 GRANTHA VOWEL SIGN EE (a
// SpacingMark: no break before it, GB9a) was cut from the "_" it belongs to.
TEST(GraphemeRegressionTest, SupplementaryCodePointsHaveTheirOwnClass) {
  const std::string found = "\x00\xff\xff\x5f\xf0\x91\x8d\x87\x00\x1a\x8b\x41\x00"s;
  EXPECT_EQ(hex(reversed(Unit::kGrapheme, found)), hex(referenceReversed(Unit::kGrapheme, found)));
  EXPECT_EQ(reversed(Unit::kGrapheme, "a_\U00011347b"), "b_\U00011347a");
  // Every code point of planes 1 (where the table has a part for the emoji block) between two
  // ASCII letters: a wrong class for any of them changes where the clusters end.
  for (char32_t cp = 0x10000; cp < 0x20000; ++cp) {
    std::string in = "a";
    appendUtf8(in, cp);
    in += 'b';
    ASSERT_EQ(hex(reversed(Unit::kGrapheme, in)), hex(referenceReversed(Unit::kGrapheme, in)))
        << "U+" << std::hex << static_cast<uint32_t>(cp);
  }
}

}  // namespace
}  // namespace reverb
