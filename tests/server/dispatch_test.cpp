// The dispatch path without the reactor: Connections over real socketpairs, fed in random pieces
// by this thread (standing in for the reactor), served by a WorkerPool of several threads. Every
// connection's replies must come out complete and in request order.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <deque>
#include <mutex>
#include <random>

#include "server/connection.h"
#include "server/job_queue.h"
#include "server/worker_pool.h"

namespace reverb {
namespace {

// Collects what strands ask of the reactor; this test's loop carries the requests out.
class RecordingOwner final : public ConnectionOwner {
 public:
  void post(ConnectionPtr c, ConnectionRequest request) noexcept override {
    {
      std::lock_guard lock(mu_);
      requests_.emplace_back(std::move(c), request);
    }
    uint64_t one = 1;
    (void)!::write(wakeFd_.get(), &one, sizeof one);
  }
  int wakeFd() const { return wakeFd_.get(); }
  std::deque<std::pair<ConnectionPtr, ConnectionRequest>> take() {
    std::lock_guard lock(mu_);
    return std::exchange(requests_, {});
  }

 private:
  UniqueFd wakeFd_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  std::mutex mu_;
  std::deque<std::pair<ConnectionPtr, ConnectionRequest>> requests_;
};

struct Peer {
  ConnectionPtr connection;
  UniqueFd client;  // the test's end of the socketpair
  std::string request;
  size_t delivered = 0;
  std::string expected;
  std::string received;
  bool paused = false;
  bool wantsWritable = false;
  bool eofDelivered = false;
  bool closed = false;
};

void runDispatch(Framing framing, size_t workers, unsigned seed) {
  constexpr int kConnections = 24;
  constexpr int kMessages = 1500;
  ProtocolConfig protocol;
  protocol.framing = framing;
  protocol.highWater = 64 * 1024;  // small, so back-pressure happens too
  ServerStats stats;
  RecordingOwner owner;
  // This thread stands in for the reactor: Connection's loop-thread checks hold it to that.
  owner.loopThread().bindToCurrentThread();
  JobQueue<ConnectionPtr> queue;
  auto producer = queue.makeProducer();
  WorkerPool pool(queue, workers);
  std::mt19937 rng(seed);

  std::vector<Peer> peers(kConnections);
  std::uniform_int_distribution<int> length(1, 200);
  for (Peer& p : peers) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    p.connection = std::make_shared<Connection>(UniqueFd(pair[0]), protocol, owner, stats);
    p.client = UniqueFd(pair[1]);
    for (int m = 0; m < kMessages; ++m) {
      std::string payload(static_cast<size_t>(length(rng)), '\0');
      for (char& c : payload) c = static_cast<char>('a' + rng() % 26);
      appendRequest(framing, payload, p.request);
      p.expected += expectedReply(framing, Unit::kByte, payload);
    }
  }

  auto schedule = [&](Peer& p, const Connection::Delivery& d) {
    if (d.pauseReading) p.paused = true;
    if (d.schedule) queue.push(producer, p.connection);
    if (d.closeNow) p.closed = true;
  };
  std::uniform_int_distribution<size_t> piece(1, 3000);
  std::uniform_int_distribution<size_t> pick(0, kConnections - 1);
  std::vector<pollfd> fds(kConnections + 1);
  char buffer[65536];
  for (;;) {
    // Deliver a few random pieces, as reads from random sockets would.
    for (int i = 0; i < 8; ++i) {
      Peer& p = peers[pick(rng)];
      if (p.paused || p.delivered == p.request.size()) continue;
      size_t n = std::min(piece(rng), p.request.size() - p.delivered);
      schedule(p, p.connection->deliver(std::string_view(p.request).substr(p.delivered, n)));
      p.delivered += n;
    }
    for (Peer& p : peers) {
      if (p.delivered == p.request.size() && !p.eofDelivered) {
        p.eofDelivered = true;
        schedule(p, p.connection->deliverEof(true));
      }
    }
    for (auto& [c, request] : owner.take()) {
      Peer& p = *std::find_if(peers.begin(), peers.end(),
                              [&](const Peer& x) { return x.connection == c; });
      if (request == ConnectionRequest::kResumeReading) p.paused = false;
      if (request == ConnectionRequest::kWatchWritable) p.wantsWritable = true;
      if (request == ConnectionRequest::kClose) p.closed = true;
    }
    // Read replies; a connection waiting for writability gets markWritable once its peer drained.
    bool allDone = true;
    for (size_t i = 0; i < peers.size(); ++i) {
      fds[i] = {peers[i].client.get(), POLLIN, 0};
      allDone &= peers[i].closed && peers[i].received.size() == peers[i].expected.size();
    }
    if (allDone) break;
    fds[kConnections] = {owner.wakeFd(), POLLIN, 0};
    bool undelivered = false;
    for (const Peer& p : peers) undelivered |= !p.paused && p.delivered < p.request.size();
    // Block only when there is nothing left to deliver: then progress must come as an event.
    int ready = ::poll(fds.data(), fds.size(), undelivered ? 0 : 20000);
    ASSERT_TRUE(ready > 0 || undelivered) << "stalled: no reply and no request for 20 s";
    uint64_t count;
    (void)!::read(owner.wakeFd(), &count, sizeof count);
    for (size_t i = 0; i < peers.size(); ++i) {
      Peer& p = peers[i];
      ssize_t n = ::recv(p.client.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) p.received.append(buffer, static_cast<size_t>(n));
      if (p.wantsWritable) {
        pollfd out{p.connection->fd(), POLLOUT, 0};
        if (::poll(&out, 1, 0) == 1) {
          p.wantsWritable = false;
          if (p.connection->markWritable()) queue.push(producer, p.connection);
        }
      }
    }
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    EXPECT_EQ(peers[i].received, peers[i].expected) << "connection " << i;
  }
  EXPECT_EQ(ServerStats::get(stats.requests), uint64_t{kConnections} * kMessages);
  pool.stop();
}

TEST(DispatchTest, LineRepliesStayInOrderWithOneWorker) { runDispatch(Framing::kLine, 1, 1); }
TEST(DispatchTest, LineRepliesStayInOrderWithFourWorkers) { runDispatch(Framing::kLine, 4, 2); }
TEST(DispatchTest, LengthRepliesStayInOrderWithFourWorkers) {
  runDispatch(Framing::kLength, 4, 3);
}
TEST(DispatchTest, LengthRepliesStayInOrderWithEightWorkers) {
  runDispatch(Framing::kLength, 8, 4);
}

}  // namespace
}  // namespace reverb
