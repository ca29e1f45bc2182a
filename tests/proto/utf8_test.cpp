// The UTF-8 decoder (and validLength, its length alone) agrees with utf8proc's validating iterator
// on every 1- and 2-byte input and on every 3- and 4-byte input built from boundary bytes.
#include "proto/utf8.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

namespace reverb::utf8 {
namespace {

// What utf8proc says about p[0, n): the code point and its length, or length 0 when ill-formed.
Decoded oracle(const unsigned char* p, size_t n) {
  utf8proc_int32_t cp = -1;
  utf8proc_ssize_t len = utf8proc_iterate(p, static_cast<utf8proc_ssize_t>(n), &cp);
  if (len <= 0) return {0, 0};
  return {static_cast<char32_t>(cp), static_cast<uint32_t>(len)};
}

void expectSame(const unsigned char* p, size_t n) {
  Decoded got = decode(p, n);
  Decoded want = oracle(p, n);
  ASSERT_EQ(got.length, want.length)
      << std::hex << "bytes " << +p[0] << " " << (n > 1 ? +p[1] : -1) << " " << (n > 2 ? +p[2] : -1)
      << " " << (n > 3 ? +p[3] : -1) << " n=" << n;
  if (got.length != 0) {
    ASSERT_EQ(got.codepoint, want.codepoint);
  }
  ASSERT_EQ(validLength(p, n), want.length);
}

TEST(Utf8DecodeTest, AgreesWithUtf8procOnAllShortInputs) {
  unsigned char buf[4];
  for (unsigned a = 0; a < 256; ++a) {
    buf[0] = static_cast<unsigned char>(a);
    expectSame(buf, 1);
    for (unsigned b = 0; b < 256; ++b) {
      buf[1] = static_cast<unsigned char>(b);
      expectSame(buf, 2);
    }
  }
}

TEST(Utf8DecodeTest, AgreesWithUtf8procOnBoundaryBytesOfLongerInputs) {
  // Every lead byte and every second byte (where the special ranges of E0, ED, F0 and F4 live),
  // then continuation bytes at and around the edges of 80..BF.
  const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0xBF, 0xC0, 0xC2, 0xF4, 0xFF};
  unsigned char buf[4];
  for (unsigned a = 0xC0; a < 256; ++a) {
    buf[0] = static_cast<unsigned char>(a);
    for (unsigned b = 0; b < 256; ++b) {
      buf[1] = static_cast<unsigned char>(b);
      for (unsigned char c : edges) {
        buf[2] = c;
        expectSame(buf, 3);
        for (unsigned char d : edges) {
          buf[3] = d;
          expectSame(buf, 4);
        }
      }
    }
  }
}

TEST(Utf8DecodeTest, KnownSequences) {
  auto dec = [](std::string_view s) {
    return decode(reinterpret_cast<const unsigned char*>(s.data()), s.size());
  };
  EXPECT_EQ(dec("\xC3\xA9").codepoint, U'é');
  EXPECT_EQ(dec("\xE2\x82\xAC").codepoint, U'€');
  EXPECT_EQ(dec("\xF0\x9F\x98\x80").codepoint, U'😀');
  EXPECT_EQ(dec("\xF4\x8F\xBF\xBF").codepoint, char32_t{0x10FFFF});
  EXPECT_EQ(dec("\xC0\xAF").length, 0u);          // overlong "/"
  EXPECT_EQ(dec("\xED\xA0\x80").length, 0u);      // surrogate U+D800
  EXPECT_EQ(dec("\xF4\x90\x80\x80").length, 0u);  // U+110000
  EXPECT_EQ(dec("\xE2\x82").length, 0u);          // truncated
}

TEST(Utf8ValidLengthTest, CountsOnlyTheSequenceAtTheStart) {
  auto len = [](std::string_view s) {
    return validLength(reinterpret_cast<const unsigned char*>(s.data()), s.size());
  };
  EXPECT_EQ(len("a\xC3\xA9"), 1u);
  EXPECT_EQ(len("\xC3\xA9z"), 2u);
  EXPECT_EQ(len("\xE2\x82\xAC\xE2\x82\xAC"), 3u);
  EXPECT_EQ(len("\xF0\x9F\x98\x80!"), 4u);
  EXPECT_EQ(len("\x80\x80"), 0u);  // a continuation byte starts nothing
  EXPECT_EQ(len("\xE2\x82"), 0u);  // truncated by the end of the input, not by a bad byte
  EXPECT_EQ(len("\xF5\x80\x80\x80"), 0u);
}

}  // namespace
}  // namespace reverb::utf8
