// Framer: the same byte stream, split anywhere, yields the same messages; limits are exact.
#include "proto/framing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace reverb {
namespace {

struct Parsed {
  std::vector<std::string> messages;  // payload + "|" + terminator
  bool tooLong = false;
};

// Feeds `stream` to a framer in pieces cut at `cuts` (ascending offsets), the way a connection
// accumulates reads, and collects every message.
Parsed feed(Framing framing, FrameLimits limits, const std::string& stream,
            const std::vector<size_t>& cuts, bool eofAtEnd = true) {
  Framer framer(framing, limits);
  Parsed out;
  std::string input;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t i = 0; i < ends.size(); ++i) {
    input.append(stream, from, ends[i] - from);
    from = ends[i];
    bool eof = eofAtEnd && i + 1 == ends.size();
    for (;;) {
      Frame frame = framer.next(input, eof);
      if (frame.status == Frame::Status::kTooLong) {
        out.tooLong = true;
        return out;
      }
      if (frame.status == Frame::Status::kNeedMore) break;
      out.messages.push_back(std::string(frame.payload) + "|" + std::string(frame.terminator));
      input.erase(0, frame.consumed);
    }
  }
  return out;
}

std::string lengthFramed(const std::vector<std::string>& payloads) {
  std::string s;
  for (const auto& p : payloads) appendRequest(Framing::kLength, p, s);
  return s;
}

TEST(FramerTest, LineStreamSplitAtEveryPointGivesSameMessages) {
  const std::string stream = "hello\nwith cr\r\n\n\r\nx\rin middle\nlast without lf";
  const std::vector<std::string> expected = {"hello|\n",  "with cr|\r\n",        "|\n",
                                             "|\r\n",     "x\rin middle|\n",     "last without lf|"};
  EXPECT_EQ(feed(Framing::kLine, {}, stream, {}).messages, expected);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    EXPECT_EQ(feed(Framing::kLine, {}, stream, {cut}).messages, expected) << "cut at " << cut;
  }
  std::vector<size_t> everyByte;
  for (size_t i = 1; i < stream.size(); ++i) everyByte.push_back(i);
  EXPECT_EQ(feed(Framing::kLine, {}, stream, everyByte).messages, expected);
}

TEST(FramerTest, LengthStreamSplitAtEveryPointGivesSameMessages) {
  const std::vector<std::string> payloads = {"abc", "", std::string(300, 'z'), "\n\r\0x", "end"};
  const std::string stream = lengthFramed(payloads);
  std::vector<std::string> expected;
  for (const auto& p : payloads) expected.push_back(p + "|");
  for (size_t a = 0; a <= stream.size(); ++a) {
    EXPECT_EQ(feed(Framing::kLength, {}, stream, {a}).messages, expected) << "cut at " << a;
  }
  // Two cuts, every pair in the first 40 bytes (headers and the empty frame live there).
  for (size_t a = 0; a < 40; ++a) {
    for (size_t b = a; b < 40; ++b) {
      EXPECT_EQ(feed(Framing::kLength, {}, stream, {a, b}).messages, expected);
    }
  }
}

TEST(FramerTest, ChunkYieldsEachReadWhole) {
  const std::string stream = "Go Coding Ninjas.";
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    Parsed parsed = feed(Framing::kChunk, {}, stream, {cut});
    std::vector<std::string> expected = {stream.substr(0, cut) + "|", stream.substr(cut) + "|"};
    EXPECT_EQ(parsed.messages, expected);
  }
}

TEST(FramerTest, LineLimitIsExact) {
  FrameLimits limits{.maxLine = 8, .maxFrame = 16};
  EXPECT_FALSE(feed(Framing::kLine, limits, std::string(8, 'a') + "\n", {}).tooLong);
  EXPECT_FALSE(feed(Framing::kLine, limits, std::string(8, 'a') + "\r\n", {}).tooLong);
  EXPECT_TRUE(feed(Framing::kLine, limits, std::string(9, 'a') + "\n", {}).tooLong);
  EXPECT_TRUE(feed(Framing::kLine, limits, std::string(9, 'a') + "\r\n", {}).tooLong);
  // At EOF the last line obeys the same limit.
  EXPECT_FALSE(feed(Framing::kLine, limits, std::string(8, 'a'), {}).tooLong);
  EXPECT_TRUE(feed(Framing::kLine, limits, std::string(9, 'a'), {}).tooLong);
}

TEST(FramerTest, OverlongLineIsCaughtBeforeItsEnd) {
  FrameLimits limits{.maxLine = 8, .maxFrame = 16};
  Framer framer(Framing::kLine, limits);
  // 8 bytes and a CR might still be a legal line; a 10th byte without LF cannot be.
  EXPECT_EQ(framer.next("aaaaaaaa\r", false).status, Frame::Status::kNeedMore);
  EXPECT_EQ(framer.next("aaaaaaaa\rb", false).status, Frame::Status::kTooLong);
  Framer other(Framing::kLine, limits);
  EXPECT_EQ(other.next("aaaaaaaab", false).status, Frame::Status::kTooLong);
}

TEST(FramerTest, EarlierLinesSurviveALaterOverlongLine) {
  FrameLimits limits{.maxLine = 4, .maxFrame = 16};
  Parsed parsed = feed(Framing::kLine, limits, "ab\ncd\nTOOLONGLINE\nef\n", {});
  EXPECT_TRUE(parsed.tooLong);
  EXPECT_EQ(parsed.messages, (std::vector<std::string>{"ab|\n", "cd|\n"}));
}

TEST(FramerTest, LengthLimitIsExactAndCheckedOnTheHeader) {
  FrameLimits limits{.maxLine = 8, .maxFrame = 16};
  EXPECT_FALSE(feed(Framing::kLength, limits, lengthFramed({std::string(16, 'x')}), {}).tooLong);
  std::string header = lengthFramed({std::string(17, 'x')}).substr(0, 4);
  Framer framer(Framing::kLength, limits);
  EXPECT_EQ(framer.next(header, false).status, Frame::Status::kTooLong);
}

TEST(FramerTest, PartialLengthFrameAtEofIsNotAMessage) {
  std::string stream = lengthFramed({"hello"});
  stream.pop_back();
  Parsed parsed = feed(Framing::kLength, {}, stream, {});
  EXPECT_TRUE(parsed.messages.empty());
  EXPECT_FALSE(parsed.tooLong);
}

// Found by fuzz_framing (its input is tests/fuzz/corpus/framing/regress-eof-cr-over-limit): at
// EOF every byte of a last line without LF is content, a trailing CR too, so "c" CR with
// --max-line 1 is 2 bytes of content, over the limit. The framer let it through, as if the CR were
// the first half of a CR LF still to come.
TEST(FramerRegressionTest, LastLineAtEofCountsItsCrAgainstTheLimit) {
  FrameLimits limits{.maxLine = 1, .maxFrame = 16};
  EXPECT_TRUE(feed(Framing::kLine, limits, "c\r", {}).tooLong);
  EXPECT_FALSE(feed(Framing::kLine, limits, "c\r", {}, /*eofAtEnd=*/false).tooLong);
  EXPECT_EQ(feed(Framing::kLine, limits, "c\r\n", {}).messages, std::vector<std::string>{"c|\r\n"});
  // The same framer, first before the EOF (a CR LF may follow), then at it.
  Framer framer(Framing::kLine, limits);
  EXPECT_EQ(framer.next("c\r", false).status, Frame::Status::kNeedMore);
  EXPECT_EQ(framer.next("c\r", true).status, Frame::Status::kTooLong);
}

TEST(ReplyTest, RepliesHaveTheProtocolsShape) {
  EXPECT_EQ(expectedReply(Framing::kChunk, Unit::kByte, "Go Coding Ninjas."), ".sajniN gnidoC oG");
  EXPECT_EQ(expectedReply(Framing::kLine, Unit::kByte, "abc"), "cba\n");
  EXPECT_EQ(expectedReply(Framing::kLine, Unit::kByte, "abc\r"), "cba\r\n");
  EXPECT_EQ(expectedReply(Framing::kLength, Unit::kByte, "abc"), std::string("\0\0\0\3cba", 7));
  EXPECT_EQ(expectedReply(Framing::kLength, Unit::kByte, ""), std::string("\0\0\0\0", 4));
}

TEST(ReplyTest, ServerReplyForParsedFrameMatchesClientExpectation) {
  for (Framing framing : {Framing::kLine, Framing::kLength}) {
    for (std::string payload : {"", "a", "hello world", "trailing cr\r"}) {
      std::string request;
      appendRequest(framing, payload, request);
      Framer framer(framing, {});
      Frame frame = framer.next(request, true);
      ASSERT_EQ(frame.status, Frame::Status::kMessage);
      EXPECT_EQ(frame.consumed, request.size());
      std::string reply(replySize(framing, frame), '\0');
      writeReply(framing, Unit::kByte, frame, reply.data());
      EXPECT_EQ(reply, expectedReply(framing, Unit::kByte, payload));
    }
  }
}

}  // namespace
}  // namespace reverb
