// Address parsing and listening sockets, on real loopback sockets.
#include "base/net.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace reverb {
namespace {

TEST(AddressTest, ParsesIpv4Ipv6AndWildcard) {
  auto v4 = parseAddress("127.0.0.1:2002");
  ASSERT_TRUE(v4) << v4.error().message();
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->toString(), "127.0.0.1:2002");

  auto v6 = parseAddress("[::1]:0");
  ASSERT_TRUE(v6) << v6.error().message();
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->toString(), "[::1]:0");

  auto any = parseAddress(":2002");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->toString(), "0.0.0.0:2002");
  EXPECT_EQ(parseAddress("localhost:7")->toString(), "127.0.0.1:7");
}

TEST(AddressTest, RejectsMalformedWithAReason) {
  for (const char* bad : {"", "2002", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "::1:80",
                          "[::1]80", "host.example:80", "1.2.3.4:12ab"}) {
    auto parsed = parseAddress(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_NE(parsed.error().message().find("address"), std::string::npos);
  }
}

TEST(ListenTest, PortZeroBindsAnEphemeralPortThatAcceptsConnections) {
  auto listener = listenOn(*parseAddress("127.0.0.1:0"), 16);
  ASSERT_TRUE(listener) << listener.error().message();
  auto bound = localAddress(listener->get());
  ASSERT_TRUE(bound);
  EXPECT_NE(bound->port(), 0);
  auto client = connectTo(*bound);
  ASSERT_TRUE(client) << client.error().message();
}

// The reactor relies on this instead of a setsockopt per accepted connection.
TEST(ListenTest, AcceptedSocketsInheritNoDelayFromTheListener) {
  for (const char* text : {"127.0.0.1:0", "[::1]:0"}) {
    auto listener = listenOn(*parseAddress(text), 16);
    ASSERT_TRUE(listener) << text << ": " << listener.error().message();
    auto client = connectTo(*localAddress(listener->get()));
    ASSERT_TRUE(client) << client.error().message();
    pollfd ready{listener->get(), POLLIN, 0};
    ASSERT_EQ(::poll(&ready, 1, 5000), 1) << text;
    UniqueFd accepted(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted.valid()) << text << ": " << std::strerror(errno);
    int noDelay = 0;
    socklen_t length = sizeof noDelay;
    ASSERT_EQ(::getsockopt(accepted.get(), IPPROTO_TCP, TCP_NODELAY, &noDelay, &length), 0);
    EXPECT_NE(noDelay, 0) << text;
  }
}

TEST(ListenTest, BindingABusyPortSaysWhich) {
  auto first = listenOn(*parseAddress("127.0.0.1:0"), 16);
  ASSERT_TRUE(first);
  auto bound = localAddress(first->get());
  auto second = listenOn(*bound, 16);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find(bound->toString()), std::string::npos);
}

}  // namespace
}  // namespace reverb
