// A Connection's lifecycle through the reactor's side of its interface: one State, moved only
// along the legal transitions, and what each state means for delivered bytes and EOF.
#include "server/connection.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reverb {
namespace {

using State = Connection::State;

class NoOwner final : public ConnectionOwner {
 public:
  void post(ConnectionPtr, ConnectionRequest) noexcept override {}
};

// One connection over a socketpair; this thread is the loop thread (it constructs the owner).
class ConnectionTest : public ::testing::Test {
 protected:
  ConnectionTest() {
    int pair[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    peer_ = UniqueFd(pair[1]);
    protocol_.highWater = 8;
    c_ = std::make_shared<Connection>(UniqueFd(pair[0]), protocol_, owner_, stats_);
  }
  ProtocolConfig protocol_;
  ServerStats stats_;
  NoOwner owner_;
  UniqueFd peer_;
  ConnectionPtr c_;
};

TEST_F(ConnectionTest, BackPressurePausesReading) {
  EXPECT_EQ(c_->state(), State::kOpen);
  Connection::Delivery d = c_->deliver("0123456789");
  EXPECT_TRUE(d.schedule);
  EXPECT_TRUE(d.pauseReading);
  EXPECT_EQ(c_->state(), State::kReadPaused);
}

TEST_F(ConnectionTest, PeerEofOnAnIdleConnectionClosesAtOnce) {
  Connection::Delivery d = c_->deliverEof(true);
  EXPECT_TRUE(d.closeNow);
  EXPECT_EQ(c_->state(), State::kPeerClosed);
}

TEST_F(ConnectionTest, ADrainEndsInputAndAPeerEofMayFollow) {
  EXPECT_TRUE(c_->deliverEof(false).closeNow);
  EXPECT_EQ(c_->state(), State::kInputEnded);
  Connection::Delivery d = c_->deliverEof(true);
  EXPECT_FALSE(d.closeNow || d.schedule);
  EXPECT_EQ(c_->state(), State::kPeerClosed);
}

TEST_F(ConnectionTest, LingeringDropsInputAndEndsAtThePeersEof) {
  auto deadline = std::chrono::steady_clock::now();
  c_->startLingering(deadline);
  EXPECT_EQ(c_->state(), State::kLingering);
  EXPECT_EQ(c_->lingerDeadline(), deadline);
  Connection::Delivery d = c_->deliver("discarded");
  EXPECT_FALSE(d.schedule || d.pauseReading);
  EXPECT_TRUE(c_->deliverEof(true).closeNow);
}

TEST_F(ConnectionTest, AbortIsFinalAndMayComeTwice) {
  c_->abort(false);
  c_->abort(true);
  EXPECT_EQ(c_->state(), State::kAborted);
  EXPECT_FALSE(c_->deliver("x").schedule);
  EXPECT_FALSE(c_->deliverEof(true).closeNow);
  EXPECT_FALSE(c_->markWritable());
}

// Request timing (ServiceTiming): a service() call reports the requests whose replies all reached
// the kernel, timed from the start of the call that parsed them.
TEST_F(ConnectionTest, ServiceReportsTheRequestsItSentAndWhenTheyWereParsed) {
  ASSERT_TRUE(c_->deliver("abc").schedule);
  ServiceTiming timing;
  timing.start = std::chrono::steady_clock::now();
  EXPECT_FALSE(c_->service(&timing));
  EXPECT_EQ(timing.completed, 1u);
  EXPECT_EQ(timing.since, timing.start);
  char reply[8] = {};
  EXPECT_EQ(::recv(peer_.get(), reply, sizeof reply, 0), 3);
  EXPECT_EQ(std::string_view(reply, 3), "cba");
  EXPECT_EQ(ServerStats::get(stats_.requests), 1u);
}

TEST_F(ConnectionTest, AReplyThatWaitsForTheReaderIsTimedFromItsParse) {
  // A reply larger than the socket takes: the first call sends part of it and completes nothing.
  int small = 4096;
  ASSERT_EQ(::setsockopt(c_->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  const std::string request(1 << 20, 'x');
  ASSERT_TRUE(c_->deliver(request).schedule);
  ServiceTiming first;
  first.start = std::chrono::steady_clock::now();
  (void)c_->service(&first);
  EXPECT_EQ(first.completed, 0u);

  // The peer reads everything; each writable call sends more, and the one that sends the last
  // byte reports the request, timed from the first call's start.
  size_t received = 0;
  std::vector<char> buffer(1 << 16);
  ServiceTiming later;
  while (received < request.size()) {
    ssize_t n = ::recv(peer_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n > 0) received += static_cast<size_t>(n);
    if (c_->markWritable()) {
      later = ServiceTiming{};
      later.start = std::chrono::steady_clock::now();
      (void)c_->service(&later);
      if (later.completed > 0) break;
    }
  }
  EXPECT_EQ(later.completed, 1u);
  EXPECT_EQ(later.since, first.start);
  EXPECT_GT(later.start, first.start);
}

TEST_F(ConnectionTest, AnIllegalTransitionAborts) {
#ifdef NDEBUG
  GTEST_SKIP() << "transition checks are compiled out where NDEBUG is defined (release builds)";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  (void)c_->deliverEof(true);
  EXPECT_DEATH(c_->startLingering(std::chrono::steady_clock::now()),
               "cannot go from peer-closed to lingering");
#endif
}

// The two halves a worker with a send ring uses: prepare() returns the replies, the worker sends a
// prefix of them, and complete() sends the rest itself.
TEST_F(ConnectionTest, CompleteSendsWhatTheRingDidNot) {
  protocol_.highWater = 1 << 20;
  ASSERT_TRUE(c_->deliver("Go Coding Ninjas.").schedule);
  std::string_view replies = c_->prepare();
  ASSERT_EQ(replies, ".sajniN gnidoC oG");
  // The ring took the first 5 bytes.
  ASSERT_EQ(::send(c_->fd(), replies.data(), 5, MSG_NOSIGNAL), 5);
  EXPECT_FALSE(c_->complete(5));
  char got[64] = {};
  ASSERT_EQ(::recv(peer_.get(), got, sizeof got, 0), 17);
  EXPECT_EQ(std::string_view(got, 17), ".sajniN gnidoC oG");
  EXPECT_EQ(ServerStats::get(stats_.bytesOut), 17u);
}

TEST_F(ConnectionTest, CompleteAfterEagainSendsEverything) {
  protocol_.highWater = 1 << 20;
  ASSERT_TRUE(c_->deliver("abc").schedule);
  ASSERT_EQ(c_->prepare(), "cba");
  EXPECT_FALSE(c_->complete(-EAGAIN));
  char got[8] = {};
  ASSERT_EQ(::recv(peer_.get(), got, sizeof got, 0), 3);
  EXPECT_EQ(std::string_view(got, 3), "cba");
}

TEST_F(ConnectionTest, CompleteAfterAResetDropsTheRepliesAndCountsIt) {
  protocol_.highWater = 1 << 20;
  ASSERT_TRUE(c_->deliver("abc").schedule);
  ASSERT_EQ(c_->prepare(), "cba");
  EXPECT_FALSE(c_->complete(-ECONNRESET));
  EXPECT_EQ(ServerStats::get(stats_.writeErrors), 1u);
  EXPECT_EQ(ServerStats::get(stats_.bytesOut), 0u);
  char got[8];
  EXPECT_EQ(::recv(peer_.get(), got, sizeof got, MSG_DONTWAIT), -1);  // nothing was sent
}

// The deadline clocks a connection keeps for the reactor (checkDeadlines), with a line-framed
// connection over a socketpair; this thread is the loop thread and, for service(), the strand.
class DeadlineTest : public ::testing::Test {
 protected:
  DeadlineTest() {
    int pair[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    peer_ = UniqueFd(pair[1]);
    protocol_.framing = Framing::kLine;
    c_ = std::make_shared<Connection>(UniqueFd(pair[0]), protocol_, owner_, stats_);
  }
  ProtocolConfig protocol_;
  ServerStats stats_;
  NoOwner owner_;
  UniqueFd peer_;
  ConnectionPtr c_;
  Connection::Deadlines deadlines_{.idleMs = 5000, .requestMs = 1000, .softMs = 0};
};

TEST_F(DeadlineTest, AnIdleConnectionReachesItsIdleDeadlineOnly) {
  const int64_t t0 = steadyMs();
  Connection::Check early = c_->checkDeadlines(t0, deadlines_);
  EXPECT_FALSE(early.close);
  EXPECT_GE(early.nextMs, t0 + 4000);  // the idle clock started when the connection was made
  EXPECT_LE(early.nextMs, t0 + 5000);
  EXPECT_EQ(c_->checkDeadlines(early.nextMs, deadlines_).close, CloseReason::kIdle);
}

TEST_F(DeadlineTest, AStartedRequestMustCompleteInTimeAndTricklingDoesNotHelp) {
  const int64_t t0 = steadyMs();
  (void)c_->deliver("GET", t0);
  (void)c_->deliver(" /", t0 + 600);  // more of the same request: the clock keeps running
  Connection::Check check = c_->checkDeadlines(t0 + 999, deadlines_);
  EXPECT_FALSE(check.close);
  EXPECT_EQ(check.nextMs, t0 + 1000);
  EXPECT_EQ(c_->checkDeadlines(t0 + 1000, deadlines_).close, CloseReason::kRequestTimeout);
  // Pending input is not idleness: with the request deadline off, nothing expires.
  Connection::Deadlines idleOnly{.idleMs = 1, .requestMs = 0, .softMs = 0};
  EXPECT_FALSE(c_->checkDeadlines(t0 + 100'000, idleOnly).close);
}

TEST_F(DeadlineTest, ACompletedRequestRestartsTheClocks) {
  const int64_t t0 = steadyMs();
  (void)c_->deliver("abc\nde", t0 - 900);  // one request done, the next begun
  EXPECT_FALSE(c_->service());
  char reply[16];
  EXPECT_EQ(::recv(peer_.get(), reply, sizeof reply, 0), 4);
  // Progress was made now: the request clock restarted, for the unfinished "de".
  Connection::Check check = c_->checkDeadlines(t0 + 500, deadlines_);
  EXPECT_FALSE(check.close);
  EXPECT_GE(check.nextMs, t0 + 1000);
  (void)c_->deliver("\n", t0 + 600);
  EXPECT_FALSE(c_->service());
  // Everything answered: the connection is idle, and only the idle deadline runs.
  check = c_->checkDeadlines(steadyMs() + 4000, deadlines_);
  EXPECT_FALSE(check.close);
  EXPECT_EQ(c_->checkDeadlines(steadyMs() + 5000, deadlines_).close, CloseReason::kIdle);
}

TEST_F(DeadlineTest, TheFirstCloseReasonWins) {
  EXPECT_EQ(c_->settleCloseReason(CloseReason::kProtocolError), CloseReason::kProtocolError);
  EXPECT_EQ(c_->settleCloseReason(CloseReason::kReset), CloseReason::kProtocolError);
}

TEST_F(DeadlineTest, TheGaugeCountsWhatTheConnectionHoldsAndNothingAfterItGoes) {
  (void)c_->deliver("abc\nunfinished", steadyMs());
  EXPECT_EQ(stats_.buffered.total(), 14);
  EXPECT_FALSE(c_->service());  // "abc\n" answered; "unfinished" waits for its LF
  EXPECT_EQ(stats_.buffered.total(), 10);
  EXPECT_EQ(c_->bufferedBytes(), 10u);
  c_->abort(false);
  EXPECT_EQ(stats_.buffered.total(), 0);
  c_.reset();
  EXPECT_EQ(stats_.buffered.total(), 0);
}

TEST(BufferGaugeTest, ConnectionsGoneLeaveTheGaugeAtZero) {
  ProtocolConfig protocol;
  protocol.framing = Framing::kLine;
  ServerStats stats;
  NoOwner owner;
  for (int i = 0; i < 3; ++i) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd peer(pair[1]);
    auto c = std::make_shared<Connection>(UniqueFd(pair[0]), protocol, owner, stats);
    (void)c->deliver("partial request without its end");
    EXPECT_GT(stats.buffered.total(), 0);
  }
  EXPECT_EQ(stats.buffered.total(), 0);
  EXPECT_GT(ServerStats::get(stats.bufferBytesFreed), 0u);
}

}  // namespace
}  // namespace reverb
