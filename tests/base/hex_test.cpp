// Hex diffs: the first difference is found exactly, differing rows are marked, long replies are
// cut to a few rows around the difference.
#include "base/hex.h"

#include <gtest/gtest.h>

namespace reverb {
namespace {

TEST(HexDiffTest, FirstDifference) {
  EXPECT_EQ(firstDifference("abc", "abc"), 3u);
  EXPECT_EQ(firstDifference("abc", "abd"), 2u);
  EXPECT_EQ(firstDifference("abc", "ab"), 2u);
  EXPECT_EQ(firstDifference("", "x"), 0u);
}

TEST(HexDiffTest, MarksTheDifferingRowAndShowsBothSides) {
  std::string expected = "olleh, this is the expected reply\n";
  std::string actual = expected;
  actual[20] ^= 0x20;
  std::string diff = formatHexDiff(expected, actual);
  EXPECT_NE(diff.find("* 000010"), std::string::npos) << diff;
  EXPECT_NE(diff.find("  000000"), std::string::npos) << diff;
  EXPECT_NE(diff.find("|olleh, this is t|"), std::string::npos) << diff;
  EXPECT_NE(diff.find(" 65 78 70 "), std::string::npos) << diff;  // "exp" expected
  EXPECT_NE(diff.find(" 65 58 70 "), std::string::npos) << diff;  // "eXp" received
  EXPECT_NE(diff.find("|he eXpected repl|"), std::string::npos) << diff;
}

TEST(HexDiffTest, LongRepliesAreCutAroundTheDifference) {
  std::string expected(4096, 'a');
  std::string actual = expected;
  actual[2000] = 'b';
  std::string diff = formatHexDiff(expected, actual, 4);
  EXPECT_NE(diff.find("* 0007d0"), std::string::npos) << diff;
  EXPECT_EQ(diff.find("000000"), std::string::npos) << diff;
  EXPECT_NE(diff.find("more rows"), std::string::npos) << diff;
}

TEST(HexDiffTest, ShortReplyShowsBlanks) {
  std::string diff = formatHexDiff("abcdef", "abc");
  EXPECT_NE(diff.find("* 000000"), std::string::npos) << diff;
  EXPECT_NE(diff.find("|abc             |"), std::string::npos) << diff;
}

TEST(HexDiffTest, Preview) {
  EXPECT_EQ(hexPreview("AB"), "41 42");
  EXPECT_EQ(hexPreview("ABCD", 2), "41 42 ...");
}

}  // namespace
}  // namespace reverb
