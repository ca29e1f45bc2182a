// ProxyStage, in-process: a header cut anywhere by TCP gives the same client and the same bytes
// after it; an invalid header is reported once and later bytes are dropped; a connection's
// listener is found from its local address as the kernel chooses it.
#include "server/proxy_stage.h"

#include <gtest/gtest.h>

#include <string>

namespace reverb {
namespace {

using Status = ProxyStage::Step::Status;

SocketAddress address(const char* text) {
  return *parseAddress(text);
}

TEST(ProxyStage, AHeaderCutAnywhereGivesTheSameClientAndTheSameRest) {
  const std::string header = "PROXY TCP6 2001:db8::7 ::1 4242 2002\r\n";
  const std::string stream = header + "Go Coding Ninjas.";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ProxyStage stage(ProxyMode::kAny);
    std::string rest;
    ProxyStage::Step first = stage.feed(std::string_view(stream).substr(0, cut));
    if (first.status == Status::kDone) {
      rest = std::string(first.rest);
      // Once done, the stage is out of the way: the reactor no longer calls it.
      ASSERT_TRUE(stage.done());
      rest += stream.substr(cut);
    } else {
      ASSERT_EQ(first.status, Status::kNeedMore) << "cut " << cut;
      ASSERT_FALSE(stage.done());
      ProxyStage::Step second = stage.feed(std::string_view(stream).substr(cut));
      ASSERT_EQ(second.status, Status::kDone) << "cut " << cut;
      rest = std::string(second.rest);
    }
    EXPECT_EQ(rest, "Go Coding Ninjas.") << "cut " << cut;
    ASSERT_TRUE(stage.client().has_value()) << "cut " << cut;
    EXPECT_EQ(stage.client()->toString(), "[2001:db8::7]:4242");
    EXPECT_EQ(stage.version(), 1);
  }
}

TEST(ProxyStage, AByteAtATime) {
  std::string header(kProxyV2Signature);
  header += "\x21\x11";
  header += std::string("\x00\x0c", 2);
  header += std::string("\xc0\x00\x02\x07\x7f\x00\x00\x01\x10\x92\x07\xd2", 12);
  ProxyStage stage(ProxyMode::kV2);
  for (size_t i = 0; i + 1 < header.size(); ++i) {
    ASSERT_EQ(stage.feed(header.substr(i, 1)).status, Status::kNeedMore) << i;
  }
  // `rest` points into the bytes fed, so they must outlive the check.
  const std::string lastBytes = header.substr(header.size() - 1) + "x";
  ProxyStage::Step last = stage.feed(lastBytes);
  ASSERT_EQ(last.status, Status::kDone);
  EXPECT_EQ(last.rest, "x");
  ASSERT_TRUE(stage.client().has_value());
  EXPECT_EQ(stage.client()->toString(), "192.0.2.7:4242");
  EXPECT_EQ(stage.version(), 2);
}

TEST(ProxyStage, AHeaderNamingNoClientLeavesTheSocketsPeer) {
  ProxyStage stage(ProxyMode::kV1);
  ProxyStage::Step step = stage.feed("PROXY UNKNOWN\r\nabc");
  ASSERT_EQ(step.status, Status::kDone);
  EXPECT_EQ(step.rest, "abc");
  EXPECT_FALSE(stage.client().has_value());
}

TEST(ProxyStage, AnInvalidHeaderIsReportedOnceThenBytesAreDropped) {
  ProxyStage stage(ProxyMode::kV2);
  ProxyStage::Step first = stage.feed("Go Coding Ninjas.");
  ASSERT_EQ(first.status, Status::kInvalid);
  EXPECT_NE(first.error, nullptr);
  EXPECT_FALSE(stage.done());
  ProxyStage::Step later = stage.feed("more");
  EXPECT_EQ(later.status, Status::kNeedMore);
  EXPECT_TRUE(later.rest.empty());
  // A header that turns invalid only in its second piece.
  ProxyStage split(ProxyMode::kV1);
  EXPECT_EQ(split.feed("PROXY TCP4 192.0.2.1").status, Status::kNeedMore);
  EXPECT_EQ(split.feed(" 192.0.2.2 1 2\n").status, Status::kInvalid);
}

TEST(ProxyStage, TheListenerIsFoundByExactAddressThenByWildcard) {
  const std::vector<ProxyListener> listeners = {
      {address("127.0.0.2:2002"), ProxyMode::kV2},
      {address("0.0.0.0:2002"), ProxyMode::kV1},
      {address("[::]:2002"), ProxyMode::kAny},
      {address("127.0.0.1:3003"), ProxyMode::kOff},
  };
  EXPECT_EQ(listenerProxyMode(listeners, address("127.0.0.2:2002")), ProxyMode::kV2);
  EXPECT_EQ(listenerProxyMode(listeners, address("127.0.0.3:2002")), ProxyMode::kV1);
  EXPECT_EQ(listenerProxyMode(listeners, address("[::1]:2002")), ProxyMode::kAny);
  EXPECT_EQ(listenerProxyMode(listeners, address("127.0.0.1:3003")), ProxyMode::kOff);
  EXPECT_EQ(listenerProxyMode(listeners, address("127.0.0.1:4004")), ProxyMode::kOff);
}

}  // namespace
}  // namespace reverb
