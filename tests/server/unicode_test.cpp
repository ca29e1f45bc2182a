// reverbd reverses what users mean: a table of real-world strings (accents, flags, families, skin
// tones, Hangul, keycaps, CR LF, ill-formed bytes) sent to the real binary in line and length
// framing, with the grapheme unit (the default there), each reply checked against the expected
// text written out by hand.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/hex.h"
#include "proto/framing.h"
#include "support/backend_environment.h"
#include "support/server_process.h"

namespace reverb::testing {
namespace {

// Runs on the backend meson chose (REVERB_TEST_BACKEND); skipped where the kernel refuses it.
class UnicodeTest : public testing::BackendTest {};

struct Case {
  const char* what;
  std::string payload;
  std::string reversed;  // by grapheme cluster, written out by hand
  bool lineSafe = true;  // false: holds LF, so only length framing can carry it
};

// Every byte as hex, so that a failed comparison shows where two byte strings differ.
std::string hex(std::string_view s) { return hexPreview(s, s.size()); }

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      {"ascii", "Go Coding Ninjas.", ".sajniN gnidoC oG"},
      {"precomposed accents", "h\u00e9llo w\u00f6rld", "dlr\u00f6w oll\u00e9h"},
      {"e + combining acute", "he\u0301llo", "olle\u0301h"},
      {"combining mark first", "\u0301abc", "cba\u0301"},
      {"two flags", "\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA",
       "\U0001F1E9\U0001F1EA\U0001F1EB\U0001F1F7"},
      {"rainbow flag (ZWJ, VS16)", "x\U0001F3F3\uFE0F\u200D\U0001F308",
       "\U0001F3F3\uFE0F\u200D\U0001F308x"},
      {"family (ZWJ)", "\U0001F469\u200D\U0001F469\u200D\U0001F467 ok",
       "ko \U0001F469\u200D\U0001F469\u200D\U0001F467"},
      {"skin tones", "\U0001F44D\U0001F3FD\U0001F44B\U0001F3FF",
       "\U0001F44B\U0001F3FF\U0001F44D\U0001F3FD"},
      {"heart with VS16", "\u2764\uFE0F!", "!\u2764\uFE0F"},
      {"keycap", "#1\uFE0F\u20E3", "1\uFE0F\u20E3#"},
      {"Hangul syllables", "\uD55C\uAD6D\uC5B4", "\uC5B4\uAD6D\uD55C"},
      {"Hangul jamo L V T", "\u1112\u1161\u11AB\u1100\u116E\u11A8",
       "\u1100\u116E\u11A8\u1112\u1161\u11AB"},
      {"CJK", "\u4F60\u597D\uFF0C\u4E16\u754C", "\u754C\u4E16\uFF0C\u597D\u4F60"},
      {"lone CR inside", "a\rb", "b\ra"},
      {"CR LF inside", "a\r\nb", "b\r\na", false},
      {"invalid bytes", "ab\xFF\xFE",
       "\xFE\xFF"
       "ba"},
      {"truncated euro sign", "\xE2\x82x", "x\x82\xE2"},
      {"cut after a lead byte", "caf\xC3",
       "\xC3"
       "fac"},
      {"surrogate encoded", "\xED\xA0\x80z", "z\x80\xA0\xED"},
  };
  return table;
}

// Sends every case the framing can carry on one connection, pipelined, then checks each reply.
void expectTableAnswered(Framing framing, std::vector<std::string> args) {
  auto server = ServerProcess::start(std::move(args));
  ASSERT_TRUE(server);
  ASSERT_NE(server->stderrText().find("unit=grapheme"), std::string::npos) << server->stderrText();
  UniqueFd fd = connectBlocking(server->address());
  ASSERT_TRUE(fd.valid());

  std::string request;
  std::vector<const Case*> sent;
  std::vector<std::string> want;
  for (const Case& c : cases()) {
    if (framing == Framing::kLine && !c.lineSafe) continue;
    appendRequest(framing, c.payload, request);
    sent.push_back(&c);
    std::string reply;
    if (framing == Framing::kLength) {
      const auto n = static_cast<uint32_t>(c.payload.size());
      for (int shift : {24, 16, 8, 0}) reply += static_cast<char>((n >> shift) & 0xFF);
    }
    reply += c.reversed;
    if (framing == Framing::kLine) reply += '\n';
    // The client-side helper the load generator uses must agree with the table.
    EXPECT_EQ(hex(expectedReply(framing, Unit::kGrapheme, c.payload)), hex(reply)) << c.what;
    want.push_back(reply);
  }
  sendAll(fd.get(), request);
  for (size_t i = 0; i < sent.size(); ++i) {
    std::string got = recvExactly(fd.get(), want[i].size());
    EXPECT_EQ(hex(got), hex(want[i])) << sent[i]->what << " (" << toString(framing) << ")";
  }
}

TEST_F(UnicodeTest, LineFramingDefaultsToGraphemesAndAnswersTheTable) {
  expectTableAnswered(Framing::kLine, {"--framing", "line"});
}

TEST_F(UnicodeTest, LengthFramingDefaultsToGraphemesAndAnswersTheTable) {
  expectTableAnswered(Framing::kLength, {"--framing", "length"});
}

TEST_F(UnicodeTest, ExplicitGraphemeUnitAnswersTheTable) {
  expectTableAnswered(Framing::kLength, {"--framing", "length", "--unit", "grapheme"});
}

}  // namespace
}  // namespace reverb::testing
