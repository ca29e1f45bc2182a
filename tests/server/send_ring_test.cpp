// A worker's SendRing over real loopback TCP sockets: several sockets' replies go out with one
// call and every byte arrives; a socket whose peer never reads gives -EAGAIN at once instead of
// waiting in the ring, and the others in the same call are still sent; a closed peer is an error
// result, not a SIGPIPE. Skipped, with the kernel's reason, where the kernel refuses io_uring (a
// failure instead under REVERB_REQUIRE_BACKENDS=1, as scripts/test sets).
#include "server/send_ring.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "base/net.h"
#include "support/backend_environment.h"

namespace reverb {
namespace {

using namespace std::chrono_literals;

// A connected loopback TCP pair.
struct Pair {
  UniqueFd server;  // the accepted side, written through the ring
  UniqueFd peer;    // the remote side, read by the test
};

Pair connectedPair(int listener, const SocketAddress& address) {
  Pair p;
  p.peer = UniqueFd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(p.peer.get(), address.get(), address.length), 0) << std::strerror(errno);
  p.server = UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(p.server.valid()) << std::strerror(errno);
  return p;
}

std::string readExactly(int fd, size_t n) {
  std::string got(n, '\0');
  size_t have = 0;
  while (have < n) {
    ssize_t r = ::recv(fd, got.data() + have, n - have, 0);
    if (r <= 0) break;
    have += static_cast<size_t>(r);
  }
  got.resize(have);
  return got;
}

class SendRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = SendRing::create();
    if (testing::skipUnavailable("io_uring", static_cast<bool>(ring),
                                 ring ? "" : ring.error().message())) {
      return;
    }
    ring_ = std::move(*ring);
    auto address = parseAddress("127.0.0.1:0");
    ASSERT_TRUE(address);
    auto listener = listenOn(*address, 16);
    ASSERT_TRUE(listener) << listener.error().message();
    listener_ = std::move(*listener);
    auto bound = localAddress(listener_.get());
    ASSERT_TRUE(bound);
    address_ = *bound;
  }

  std::unique_ptr<SendRing> ring_;
  UniqueFd listener_;
  SocketAddress address_;
};

TEST(ReplySendTest, NamesRoundTrip) {
  for (const char* name : {"auto", "io_uring", "send"}) {
    auto mode = parseReplySend(name);
    ASSERT_TRUE(mode) << name;
    EXPECT_EQ(toString(*mode), name);
  }
  EXPECT_FALSE(parseReplySend("uring"));
  EXPECT_FALSE(parseReplySend(""));
}

TEST_F(SendRingTest, EveryReplyOfEverySocketArrives) {
  std::vector<Pair> pairs;
  std::vector<std::string> replies;
  std::vector<SendRing::Send> sends;
  for (size_t i = 0; i < SendRing::kMaxSends; ++i) {
    pairs.push_back(connectedPair(listener_.get(), address_));
    replies.push_back(std::string(17 + i * 1000, static_cast<char>('a' + i)));
  }
  for (size_t i = 0; i < pairs.size(); ++i) sends.push_back({pairs[i].server.get(), replies[i], 0});
  // Twice: the ring is reused from one batch to the next.
  for (int round = 0; round < 2; ++round) {
    ring_->sendAll(sends);
    for (size_t i = 0; i < pairs.size(); ++i) {
      EXPECT_EQ(sends[i].result, static_cast<ssize_t>(replies[i].size())) << i;
      EXPECT_EQ(readExactly(pairs[i].peer.get(), replies[i].size()), replies[i]) << i;
    }
  }
}

TEST_F(SendRingTest, AFullSocketGivesEagainAtOnceAndTheOthersStillGo) {
  Pair stuck = connectedPair(listener_.get(), address_);
  Pair fine = connectedPair(listener_.get(), address_);
  int small = 4096;
  ASSERT_EQ(::setsockopt(stuck.server.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  ASSERT_EQ(::setsockopt(stuck.peer.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  // Fill the stuck socket's path until the kernel takes no more: its peer never reads.
  std::string block(64 * 1024, 'x');
  while (::send(stuck.server.get(), block.data(), block.size(), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);

  std::string reply = "!dlrow ,olleh";
  std::vector<SendRing::Send> sends = {{stuck.server.get(), block, 0},
                                       {fine.server.get(), reply, 0}};
  auto start = std::chrono::steady_clock::now();
  ring_->sendAll(sends);
  // Waiting in the ring for the stuck peer would block until the test's timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(sends[0].result, -EAGAIN);
  EXPECT_EQ(sends[1].result, static_cast<ssize_t>(reply.size()));
  EXPECT_EQ(readExactly(fine.peer.get(), reply.size()), reply);
}

TEST_F(SendRingTest, AClosedPeerIsAnErrorResultNotASignal) {
  Pair gone = connectedPair(listener_.get(), address_);
  Pair fine = connectedPair(listener_.get(), address_);
  // A reset: SO_LINGER 0 makes the peer's close send RST, so the next send fails at once.
  linger reset{1, 0};
  ASSERT_EQ(::setsockopt(gone.peer.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  gone.peer.reset();
  std::string reply = "ok";
  std::vector<SendRing::Send> sends = {{gone.server.get(), reply, 0},
                                       {fine.server.get(), reply, 0}};
  // The RST may take a moment to arrive over loopback: send until the error shows (bounded).
  for (int i = 0; i < 1000 && sends[0].result >= 0; ++i) {
    ring_->sendAll(sends);
    ASSERT_EQ(readExactly(fine.peer.get(), reply.size()), reply);
  }
  EXPECT_TRUE(sends[0].result == -ECONNRESET || sends[0].result == -EPIPE) << sends[0].result;
}

}  // namespace
}  // namespace reverb
