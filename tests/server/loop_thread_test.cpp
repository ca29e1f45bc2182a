// The loop-thread rules are checks, not comments: a loop-thread-only Connection method called from
// another thread aborts with a message naming the function, where NDEBUG is not defined.
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "server/connection.h"
#include "server/loop_thread.h"

namespace reverb {
namespace {

class NoOwner final : public ConnectionOwner {
 public:
  void post(ConnectionPtr, ConnectionRequest) noexcept override {}
};

struct Fixture {
  Fixture() {
    int pair[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    peer = UniqueFd(pair[1]);
    connection = std::make_shared<Connection>(UniqueFd(pair[0]), protocol, owner, stats);
  }
  ProtocolConfig protocol;
  ServerStats stats;
  NoOwner owner;  // constructed here: this thread is its loop thread
  UniqueFd peer;
  ConnectionPtr connection;
};

TEST(LoopThreadDeathTest, DeliverFromAnotherThreadAborts) {
#ifdef NDEBUG
  GTEST_SKIP() << "loop-thread checks are compiled out where NDEBUG is defined (release builds)";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Fixture f;
  EXPECT_DEATH(std::thread([&] { (void)f.connection->deliver("x"); }).join(),
               "Connection::deliver.* is loop-thread only, but was called on thread");
  EXPECT_DEATH(std::thread([&] { f.connection->abort(false); }).join(),
               "Connection::abort.* is loop-thread only");
#endif
}

TEST(LoopThreadTest, ATestCanBindTheLoopThreadToItsOwnThread) {
  Fixture f;
  std::thread([&] {
    f.owner.loopThread().bindToCurrentThread();
    Connection::Delivery d = f.connection->deliver("abc");
    EXPECT_TRUE(d.schedule);
    f.connection->abort(false);
  }).join();
}

#ifndef NDEBUG
TEST(LoopThreadDeathTest, AfterRebindingTheOldThreadIsRefused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Fixture f;
  std::thread([&] { f.owner.loopThread().bindToCurrentThread(); }).join();
  EXPECT_DEATH(f.connection->markWritable(), "Connection::markWritable.* is loop-thread only");
}
#endif

}  // namespace
}  // namespace reverb
