// reverbd behind a balancer: --proxy-protocol and ",proxy=MODE" listeners (the header is consumed
// before framing, its client shows in log lines, a connection without a valid one is closed) and
// --reuseport (two processes share a port). The real binary, real loopback sockets.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cctype>
#include <string>
#include <vector>

#include "proto/proxy_protocol.h"
#include "support/backend_environment.h"
#include "support/server_process.h"
#include "support/tool_process.h"

namespace reverb::testing {
namespace {

using namespace std::chrono_literals;

class ProxyTest : public BackendTest {};

// What HAProxy's send-proxy-v2 sends for a TCP4 client 192.0.2.7:4242 that reached 127.0.0.1:2002.
std::string v2Tcp4() {
  std::string h(kProxyV2Signature);
  h += std::string("\x21\x11\x00\x0c", 4);
  h += std::string("\xc0\x00\x02\x07\x7f\x00\x00\x01\x10\x92\x07\xd2", 12);
  return h;
}

// v2 LOCAL, as a balancer's own health check sends it: no client address.
std::string v2Local() {
  return std::string(kProxyV2Signature) + std::string("\x20\x00\x00\x00", 4);
}

// The number right after the first `label` in `text`, or -1. (No std::regex: GCC 12 warns
// inside it under ASan, and CI's warnings are errors.)
long numberAfter(const std::string& text, const std::string& label) {
  size_t at = text.find(label);
  if (at == std::string::npos) return -1;
  at += label.size();
  size_t end = at;
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  return end == at ? -1 : std::stol(text.substr(at, end - at));
}

// The counter line reverbd logs at exit, "PROXY headers: N accepted, M connections closed
// without a valid one": {N, M}.
std::pair<long, long> proxyCounters(const std::string& log) {
  const size_t line = log.find("PROXY headers: ");
  if (line == std::string::npos) return {-1, -1};
  const std::string rest = log.substr(line);
  return {numberAfter(rest, "PROXY headers: "), numberAfter(rest, "accepted, ")};
}

TEST_F(ProxyTest, AV1HeaderIsConsumedBeforeFramingAndItsClientIsLogged) {
  auto server = ServerProcess::start(
      {"--listen", "127.0.0.1:0,proxy=v1", "--framing", "line", "--max-line", "8"});
  ASSERT_TRUE(server);
  EXPECT_NE(server->stderrText().find("proxy=v1"), std::string::npos) << server->stderrText();
  UniqueFd fd = connectBlocking(server->address());
  ASSERT_TRUE(fd.valid());
  // Header, a request, then a line over --max-line: reverbd warns naming the client, and closes
  // after the earlier reply.
  sendAll(fd.get(), "PROXY TCP4 192.0.2.7 127.0.0.1 4242 2002\r\nabc\n0123456789\n");
  EXPECT_EQ(recvUntilEof(fd.get()), "cba\n");
  EXPECT_TRUE(server->waitForStderr("192.0.2.7:4242: line over the limit", 20s))
      << server->stderrText();
  server->signal(SIGTERM);
  ASSERT_EQ(server->waitExit(20s), 0);
  EXPECT_EQ(proxyCounters(server->stderrText()), std::make_pair(1L, 0L));
}

TEST_F(ProxyTest, AV2HeaderInTwoSendsThenTheArticlesRequest) {
  auto server = ServerProcess::start({"--proxy-protocol", "v2"});
  ASSERT_TRUE(server);
  UniqueFd fd = connectBlocking(server->address());
  ASSERT_TRUE(fd.valid());
  const std::string header = v2Tcp4();
  sendAll(fd.get(), header.substr(0, 9));
  sendAll(fd.get(), header.substr(9) + "Go Coding Ninjas.");
  EXPECT_EQ(recvExactly(fd.get(), 17), ".sajniN gnidoC oG");
  // A LOCAL header (a balancer's health check) is accepted too.
  UniqueFd check = connectBlocking(server->address());
  ASSERT_TRUE(check.valid());
  sendAll(check.get(), v2Local() + "abc");
  EXPECT_EQ(recvExactly(check.get(), 3), "cba");
  fd.reset();
  check.reset();
  server->signal(SIGTERM);
  ASSERT_EQ(server->waitExit(20s), 0);
  EXPECT_EQ(proxyCounters(server->stderrText()), std::make_pair(2L, 0L));
}

TEST_F(ProxyTest, AConnectionWithoutAValidHeaderIsClosedUnanswered) {
  auto server = ServerProcess::start({"--proxy-protocol", "any", "--log-level", "debug"});
  ASSERT_TRUE(server);
  for (const std::string& bad :
       {std::string("Go Coding Ninjas."), std::string("PROXY TCP4 1.2.3.4\n"),
        std::string(kProxyV2Signature) + std::string("\x11\x11", 2)}) {
    UniqueFd fd = connectBlocking(server->address());
    ASSERT_TRUE(fd.valid());
    sendAll(fd.get(), bad);
    // Closed at once (a FIN or a reset), with nothing sent back: no reply to an unproxied request.
    EXPECT_EQ(recvUntilEof(fd.get()), "") << bad;
  }
  EXPECT_TRUE(server->waitForStderr("no valid PROXY header (--proxy-protocol any)", 20s))
      << server->stderrText();
  // The server goes on serving proper connections.
  UniqueFd good = connectBlocking(server->address());
  ASSERT_TRUE(good.valid());
  sendAll(good.get(), "PROXY TCP6 ::ffff:192.0.2.9 ::1 5 6\r\nxyz");
  EXPECT_EQ(recvExactly(good.get(), 3), "zyx");
  good.reset();
  server->signal(SIGTERM);
  ASSERT_EQ(server->waitExit(20s), 0);
  EXPECT_EQ(proxyCounters(server->stderrText()), std::make_pair(1L, 3L));
}

TEST_F(ProxyTest, EachListenerFollowsItsOwnMode) {
  // The global mode is v2; the second address overrides it with off.
  auto server = ServerProcess::start(
      {"--proxy-protocol", "v2", "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0,proxy=off"});
  ASSERT_TRUE(server);
  ASSERT_EQ(server->addresses().size(), 2u);
  EXPECT_NE(server->stderrText().find("proxy=v2,off"), std::string::npos) << server->stderrText();
  UniqueFd proxied = connectBlocking(server->addresses()[0]);
  UniqueFd plain = connectBlocking(server->addresses()[1]);
  ASSERT_TRUE(proxied.valid() && plain.valid());
  sendAll(plain.get(), "Go Coding Ninjas.");
  EXPECT_EQ(recvExactly(plain.get(), 17), ".sajniN gnidoC oG");
  sendAll(proxied.get(), "Go Coding Ninjas.");
  EXPECT_EQ(recvUntilEof(proxied.get()), "");
  UniqueFd again = connectBlocking(server->addresses()[0]);
  ASSERT_TRUE(again.valid());
  sendAll(again.get(), v2Tcp4() + "Go Coding Ninjas.");
  EXPECT_EQ(recvExactly(again.get(), 17), ".sajniN gnidoC oG");
}

TEST_F(ProxyTest, BadModesAreUsageErrors) {
  const std::string reverbd = envOr("REVERBD");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--proxy-protocol", "v3"},
        std::vector<std::string>{"--listen", "127.0.0.1:0,proxy=yes"},
        std::vector<std::string>{"--listen", "127.0.0.1:0,backlog=9"}}) {
    ToolResult r = runTool(reverbd, args, 20s);
    EXPECT_EQ(r.exitCode, 2) << args[1] << ": " << r.err;
    EXPECT_NE(r.err.find("reverbd:"), std::string::npos) << r.err;
  }
}

TEST_F(ProxyTest, ReusePortLetsTwoServersShareAPortAndBothServe) {
  auto first = ServerProcess::start({"--reuseport"});
  ASSERT_TRUE(first);
  EXPECT_NE(first->stderrText().find("reuseport=on"), std::string::npos);
  const std::string shared = first->address().toString();
  // Without SO_REUSEPORT on both, the port is taken.
  ToolResult refused = runTool(envOr("REVERBD"), {"--listen", shared}, 20s);
  EXPECT_EQ(refused.exitCode, 1) << refused.err;
  EXPECT_NE(refused.err.find("Address already in use"), std::string::npos) << refused.err;
  auto second = ServerProcess::start({"--listen", shared, "--reuseport"});
  ASSERT_TRUE(second);
  // The kernel spreads connections over both by a hash of the addresses: with 64 connections from
  // distinct ports, each server gets some (all on one: a chance of 2^-63).
  constexpr int kConnections = 64;
  for (int i = 0; i < kConnections; ++i) {
    UniqueFd fd = connectBlocking(first->address());
    ASSERT_TRUE(fd.valid());
    sendAll(fd.get(), "abc");
    ASSERT_EQ(recvExactly(fd.get(), 3), "cba");
  }
  int total = 0;
  for (ServerProcess* s : {first.get(), second.get()}) {
    s->signal(SIGTERM);
    ASSERT_EQ(s->waitExit(20s), 0);
    const std::string log = s->stderrText();
    const long connections = numberAfter(log, "stopped: ");
    ASSERT_GE(connections, 0) << log;
    EXPECT_GT(connections, 0) << log;
    total += static_cast<int>(connections);
  }
  EXPECT_EQ(total, kConnections);
}

}  // namespace
}  // namespace reverb::testing
