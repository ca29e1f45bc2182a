// The backend registry in-process: names round-trip, epoll is listed and available on any Linux
// this project supports, and makeBackend obeys the kind it is given. Then the epoll backend's
// "impossible" failures, provoked by swapping the file behind a registered fd number: each one is
// reported, never dropped.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "server/backends/backends.h"
#include "server/backends/epoll.h"
#include "server/connection.h"

namespace reverb {
namespace {

TEST(BackendsTest, NamesRoundTrip) {
  for (BackendKind kind : {BackendKind::kAuto, BackendKind::kEpoll}) {
    EXPECT_EQ(parseBackend(toString(kind)), kind) << toString(kind);
  }
  EXPECT_EQ(parseBackend("kqueue"), std::nullopt);
  EXPECT_EQ(parseBackend(""), std::nullopt);
}

TEST(BackendsTest, EveryBackendIsListedWithAReasonWhenUnavailable) {
  std::vector<BackendInfo> backends = availableBackends();
  ASSERT_FALSE(backends.empty());
  bool epoll = false;
  for (const BackendInfo& b : backends) {
    EXPECT_EQ(parseBackend(b.name), b.kind) << b.name;
    EXPECT_EQ(b.available, b.reason.empty()) << b.name << ": " << b.reason;
    if (b.kind == BackendKind::kEpoll) epoll = b.available;
  }
  EXPECT_TRUE(epoll) << "epoll is listed as unavailable on Linux";
}

TEST(BackendsTest, MakeBackendObeysTheKind) {
  auto epoll = makeBackend(BackendKind::kEpoll);
  ASSERT_TRUE(epoll) << epoll.error().message();
  EXPECT_EQ((*epoll)->name(), "epoll");

  // kAuto is the first available backend in preference order.
  std::string first;
  for (const BackendInfo& b : availableBackends()) {
    if (b.available) {
      first = std::string(b.name);
      break;
    }
  }
  auto chosen = makeBackend(BackendKind::kAuto);
  ASSERT_TRUE(chosen) << chosen.error().message();
  EXPECT_EQ((*chosen)->name(), first);
}

// Records what the backend reports; these tests look only at errors.
class RecordingEvents final : public IoEvents {
 public:
  void onAccept(UniqueFd) noexcept override {}
  void onAcceptError(int) noexcept override {}
  void onData(Connection&, std::string_view) noexcept override {}
  void onEof(Connection&) noexcept override {}
  void onError(Connection& c, int error) noexcept override { errors.emplace_back(&c, error); }
  void onWritable(Connection&) noexcept override {}
  void onWake() noexcept override {}
  void onPolled() noexcept override {}

  std::vector<std::pair<Connection*, int>> errors;
};

class NoOwner final : public ConnectionOwner {
 public:
  void post(ConnectionPtr, ConnectionRequest) noexcept override {}
};

// Puts a different open file under `fd`'s number. The epoll registration belongs to the old file,
// which closes here, so the kernel drops it and the next EPOLL_CTL_MOD/ADD for the number fails.
void replaceFile(int fd, int with) {
  ASSERT_EQ(::dup2(with, fd), fd);
  ::close(with);
}

TEST(EpollBackendTest, AFailedRearmClosesThatConnectionThroughOnError) {
  auto backend = EpollBackend::create();
  ASSERT_TRUE(backend) << backend.error().message();
  ProtocolConfig protocol;
  ServerStats stats;
  NoOwner owner;
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd peer(pair[1]);
  auto c = std::make_shared<Connection>(UniqueFd(pair[0]), protocol, owner, stats);
  ASSERT_TRUE((*backend)->addConnection(*c));

  int other[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, other), 0);
  UniqueFd otherPeer(other[1]);
  replaceFile(c->fd(), other[0]);
  (*backend)->wantWritable(*c);  // EPOLL_CTL_MOD: ENOENT

  RecordingEvents events;
  ASSERT_TRUE((*backend)->poll(events, 0));  // a connection's failure does not end the loop
  ASSERT_EQ(events.errors.size(), 1u);
  EXPECT_EQ(events.errors[0].first, c.get());
  EXPECT_EQ(events.errors[0].second, ENOENT);
  ASSERT_TRUE((*backend)->poll(events, 0));
  EXPECT_EQ(events.errors.size(), 1u) << "reported once";
  (*backend)->removeConnection(*c, false);
}

TEST(EpollBackendTest, AListenerThatCannotBeWatchedAgainEndsTheLoop) {
  auto backend = EpollBackend::create();
  ASSERT_TRUE(backend) << backend.error().message();
  auto address = parseAddress("127.0.0.1:0");
  ASSERT_TRUE(address);
  auto listener = listenOn(*address, 16);
  ASSERT_TRUE(listener) << listener.error().message();
  ASSERT_TRUE((*backend)->addListener(listener->get()));
  (*backend)->setAccepting(false);  // an accept pause (EMFILE)

  // A memfd cannot be polled: the ADD that resumes accepting fails with EPERM.
  int file = ::memfd_create("reverb-test", MFD_CLOEXEC);
  ASSERT_GE(file, 0);
  replaceFile(listener->get(), file);
  (*backend)->setAccepting(true);

  RecordingEvents events;
  auto polled = (*backend)->poll(events, 0);
  ASSERT_FALSE(polled) << "a server that silently stopped accepting";
  EXPECT_EQ(polled.error().code.value(), EPERM) << polled.error().message();
  EXPECT_NE(polled.error().message().find("listener"), std::string::npos);
  EXPECT_FALSE((*backend)->poll(events, 0)) << "the loop must not go on";
}

}  // namespace
}  // namespace reverb
