// Payload generation and the message pool: exact sizes, valid UTF-8 with every feature the issue
// names, no LF in line framing, and requests/replies equal to what proto's framing functions
// produce for every framing and every unit reverb::parseUnit knows.
#include "load/payload.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace reverb::load {
namespace {

// Strict UTF-8 check (Unicode Table 3-7), written here independently of the code under test.
bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    if (n > 1) {
      auto b1 = static_cast<unsigned char>(s[i + 1]);
      unsigned lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
      unsigned hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
      if (b1 < lo || b1 > hi) return false;
      for (size_t k = 2; k < n; ++k) {
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      }
    }
    i += n;
  }
  return true;
}

std::vector<Unit> allUnits() {
  std::vector<Unit> units;
  for (const char* name : {"byte", "codepoint", "grapheme"}) {
    if (auto u = parseUnit(name)) units.push_back(*u);
  }
  return units;
}

TEST(PayloadTest, EveryKindHasTheExactSize) {
  std::mt19937_64 rng(7);
  for (auto kind : {PayloadKind::kAscii, PayloadKind::kUtf8, PayloadKind::kBinary}) {
    for (size_t size = 0; size < 300; ++size) {
      EXPECT_EQ(makePayload(kind, size, false, rng).size(), size) << toString(kind);
      EXPECT_EQ(makePayload(kind, size, true, rng).size(), size) << toString(kind);
    }
  }
}

TEST(PayloadTest, AsciiIsPrintable) {
  std::mt19937_64 rng(1);
  for (char c : makePayload(PayloadKind::kAscii, 10000, false, rng)) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
  }
}

TEST(PayloadTest, Utf8IsValidAndMixesEveryFeature) {
  std::mt19937_64 rng(2);
  std::string all;
  for (size_t size : {1, 2, 3, 5, 17, 64, 1000}) {
    for (int i = 0; i < 20; ++i) {
      std::string p = makePayload(PayloadKind::kUtf8, size, false, rng);
      EXPECT_TRUE(validUtf8(p)) << size;
      all += p;
    }
  }
  EXPECT_NE(all.find("\xC3\xA9"), std::string::npos);              // 2-byte
  EXPECT_NE(all.find("\xE4\xB8\xAD"), std::string::npos);          // 3-byte
  EXPECT_NE(all.find("\xF0\x9F\x98\x80"), std::string::npos);      // 4-byte
  EXPECT_NE(all.find("e\xCC\x81"), std::string::npos);             // combining mark
  EXPECT_NE(all.find("\xE2\x80\x8D"), std::string::npos);          // ZWJ
  EXPECT_NE(all.find("\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7"), std::string::npos);  // flag
}

TEST(PayloadTest, LineFramingNeverGetsALineFeed) {
  std::mt19937_64 rng(3);
  for (auto kind : {PayloadKind::kAscii, PayloadKind::kUtf8, PayloadKind::kBinary}) {
    for (int i = 0; i < 200; ++i) {
      EXPECT_EQ(makePayload(kind, 200, true, rng).find('\n'), std::string::npos) << toString(kind);
    }
  }
  // Without the restriction binary payloads do contain LF, so the restriction is what removes it.
  std::string binary = makePayload(PayloadKind::kBinary, 100000, false, rng);
  EXPECT_NE(binary.find('\n'), std::string::npos);
}

TEST(PayloadTest, PoolHoldsTheCoreFramingsRequestsAndReplies) {
  for (Framing framing : {Framing::kChunk, Framing::kLine, Framing::kLength}) {
    for (Unit unit : allUnits()) {
      for (auto kind : {PayloadKind::kAscii, PayloadKind::kUtf8, PayloadKind::kBinary}) {
        PayloadSpec spec;
        spec.kind = kind;
        spec.sizeMin = 1;
        spec.sizeMax = 200;
        spec.poolSize = 50;
        auto pool = MessagePool::build(framing, unit, spec);
        ASSERT_TRUE(pool) << pool.error().message();
        ASSERT_EQ(pool->size(), 50u);
        for (size_t i = 0; i < pool->size(); ++i) {
          std::string request;
          appendRequest(framing, pool->payload(i), request);
          EXPECT_EQ(pool->request(i), request);
          EXPECT_EQ(pool->reply(i), expectedReply(framing, unit, pool->payload(i)));
          EXPECT_LE(pool->request(i).size(), pool->maxRequestSize());
          EXPECT_LE(pool->reply(i).size(), pool->maxReplySize());
        }
      }
    }
  }
}

TEST(PayloadTest, SizesSpanTheAskedRange) {
  PayloadSpec spec;
  spec.sizeMin = 10;
  spec.sizeMax = 20;
  spec.poolSize = 500;
  auto pool = MessagePool::build(Framing::kLength, Unit::kByte, spec);
  ASSERT_TRUE(pool);
  size_t lo = SIZE_MAX;
  size_t hi = 0;
  for (size_t i = 0; i < pool->size(); ++i) {
    lo = std::min(lo, pool->payload(i).size());
    hi = std::max(hi, pool->payload(i).size());
  }
  EXPECT_EQ(lo, 10u);
  EXPECT_EQ(hi, 20u);
}

TEST(PayloadTest, FixedMessageIsTheWholePool) {
  PayloadSpec spec;
  spec.message = "hello, reverb";
  auto pool = MessagePool::build(Framing::kLine, Unit::kByte, spec);
  ASSERT_TRUE(pool);
  ASSERT_EQ(pool->size(), 1u);
  EXPECT_EQ(pool->request(0), "hello, reverb\n");
  EXPECT_EQ(pool->reply(0), "brever ,olleh\n");
}

TEST(PayloadTest, ImpossibleSpecsAreRefusedWithASentence) {
  PayloadSpec lf;
  lf.message = "a\nb";
  auto r1 = MessagePool::build(Framing::kLine, Unit::kByte, lf);
  ASSERT_FALSE(r1);
  EXPECT_NE(r1.error().context.find("LF"), std::string::npos);
  EXPECT_TRUE(MessagePool::build(Framing::kLength, Unit::kByte, lf));

  PayloadSpec empty;
  empty.sizeMin = empty.sizeMax = 0;
  EXPECT_FALSE(MessagePool::build(Framing::kChunk, Unit::kByte, empty));
  EXPECT_TRUE(MessagePool::build(Framing::kLine, Unit::kByte, empty));

  PayloadSpec inverted;
  inverted.sizeMin = 10;
  inverted.sizeMax = 5;
  EXPECT_FALSE(MessagePool::build(Framing::kLine, Unit::kByte, inverted));
}

TEST(PayloadTest, AutomaticPoolStaysWithinItsBudget) {
  PayloadSpec big;
  big.sizeMin = big.sizeMax = 1 << 20;
  auto pool = MessagePool::build(Framing::kLength, Unit::kByte, big);
  ASSERT_TRUE(pool);
  EXPECT_LE(pool->size(), 32u);
  EXPECT_GE(pool->size(), 1u);
  PayloadSpec small;
  auto smallPool = MessagePool::build(Framing::kLine, Unit::kByte, small);
  EXPECT_EQ(smallPool->size(), 1024u);
}

TEST(PayloadTest, SameSeedSamePayloads) {
  PayloadSpec spec;
  spec.kind = PayloadKind::kUtf8;
  spec.sizeMax = 100;
  auto a = MessagePool::build(Framing::kLine, Unit::kByte, spec);
  auto b = MessagePool::build(Framing::kLine, Unit::kByte, spec);
  spec.seed = 2;
  auto c = MessagePool::build(Framing::kLine, Unit::kByte, spec);
  EXPECT_EQ(a->payload(5), b->payload(5));
  EXPECT_NE(a->payload(5), c->payload(5));
}

}  // namespace
}  // namespace reverb::load
