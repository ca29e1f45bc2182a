// minimal: the smallest one-thread epoll reversal server we could write, and so the practical limit
// of one thread on this machine; reverbd is judged against it (bench/README in docs/BENCHMARKS.md).
// One level-triggered epoll loop: one read per readiness event into a shared buffer, complete frames
// reversed in place and written straight back. A partial write is kept in the connection's buffer
// and reading stops until it drains, so a slow reader cannot make the server buffer without bound.
// SIGINT/SIGTERM arrive through a signalfd and end the loop with exit status 0.
//
// Usage: minimal [--listen HOST:PORT] [--framing chunk|line|length] [--max-line N] [--max-frame N]
// Prints "minimal ready: listening on HOST:PORT framing=F" on stderr once it accepts connections.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/net.h"
#include "in_place.h"
#include "start_up.h"

namespace reverb::baseline {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kMaxEvents = 256;

struct Connection {
  Connection(int fd, Framing framing, FrameLimits limits) : socket(fd), reverser(framing, limits) {}
  UniqueFd socket;
  InPlaceReverser reverser;
  Buffer pending;        // reply bytes the socket did not take yet
  bool closing = false;  // the peer finished sending: close once pending is written
};

class Server {
 public:
  Server(UniqueFd listener, UniqueFd signals, Framing framing, FrameLimits limits)
      : listener_(std::move(listener)), signals_(std::move(signals)), framing_(framing),
        limits_(limits) {}

  int run() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) return fail("epoll_create1");
    if (!watch(listener_.get(), EPOLL_CTL_ADD, EPOLLIN, &listener_)) return fail("watch listener");
    if (!watch(signals_.get(), EPOLL_CTL_ADD, EPOLLIN, &signals_)) return fail("watch signals");
    epoll_event events[kMaxEvents];
    for (;;) {
      int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail("epoll_wait");
      for (int i = 0; i < n; ++i) {
        void* tag = events[i].data.ptr;
        if (tag == &signals_) return 0;
        if (tag == &listener_) {
          acceptAll();
        } else {
          auto* c = static_cast<Connection*>(tag);
          if (events[i].events & EPOLLOUT) {
            flush(c);
          } else {
            readOnce(c);
          }
        }
      }
    }
  }

 private:
  static int fail(const char* what) {
    std::perror(what);
    return 1;
  }

  bool watch(int fd, int op, uint32_t events, void* tag) noexcept {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = tag;
    return ::epoll_ctl(epoll_.get(), op, fd, &ev) == 0;
  }

  void acceptAll() {
    for (;;) {
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: stop watching the listener until a connection closes, rather
          // than wake up for it again and again.
          if (watch(listener_.get(), EPOLL_CTL_DEL, 0, nullptr)) acceptPaused_ = true;
        }
        return;  // EAGAIN, or a connection that died in the queue (ECONNABORTED)
      }
      auto c = std::make_unique<Connection>(fd, framing_, limits_);
      if (!watch(fd, EPOLL_CTL_ADD, EPOLLIN, c.get())) continue;
      if (connections_.size() <= static_cast<size_t>(fd)) connections_.resize(fd + 1);
      connections_[fd] = std::move(c);
    }
  }

  void readOnce(Connection* c) {
    ssize_t n = ::recv(c->socket.get(), scratch_.get(), kReadSize, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return close(c);
    }
    bool eof = n == 0;
    auto reply = c->reverser.feed(scratch_.get(), static_cast<size_t>(n), eof);
    if (!reply) return close(c);
    if (!reply->empty()) {
      ssize_t sent = ::send(c->socket.get(), reply->data(), reply->size(), MSG_NOSIGNAL);
      if (sent < 0 && errno != EAGAIN && errno != EINTR) return close(c);
      size_t done = sent < 0 ? 0 : static_cast<size_t>(sent);
      if (done < reply->size()) {
        c->pending.append(reply->data() + done, reply->size() - done);
        c->closing = eof;
        watch(c->socket.get(), EPOLL_CTL_MOD, EPOLLOUT, c);
        return;
      }
    }
    if (eof) close(c);
  }

  void flush(Connection* c) {
    ssize_t sent = ::send(c->socket.get(), c->pending.data(), c->pending.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return close(c);
    }
    c->pending.consume(static_cast<size_t>(sent));
    if (!c->pending.empty()) return;
    if (c->closing) return close(c);
    c->pending.shrinkIfIdle(kReadSize);
    watch(c->socket.get(), EPOLL_CTL_MOD, EPOLLIN, c);
  }

  void close(Connection* c) {
    connections_[c->socket.get()].reset();  // closing the fd also removes it from the epoll set
    if (acceptPaused_ && watch(listener_.get(), EPOLL_CTL_ADD, EPOLLIN, &listener_)) {
      acceptPaused_ = false;
    }
  }

  UniqueFd listener_;
  UniqueFd signals_;
  UniqueFd epoll_;
  Framing framing_;
  FrameLimits limits_;
  bool acceptPaused_ = false;
  std::vector<std::unique_ptr<Connection>> connections_;  // indexed by fd
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(kReadSize);
};

}  // namespace
}  // namespace reverb::baseline

int main(int argc, char** argv) {
  using namespace reverb;
  auto started = baseline::startUp(
      "minimal", "minimal: the smallest one-thread epoll reversal server (a benchmark baseline)",
      argc, argv);
  if (int* status = std::get_if<int>(&started)) return *status;
  baseline::StartUp& s = std::get<baseline::StartUp>(started);
  UniqueFd signals(::signalfd(-1, &s.stopSignals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals.valid()) {
    std::perror("minimal: signalfd");
    return 1;
  }
  std::fprintf(stderr, "minimal ready: listening on %s framing=%s\n", s.bound.toString().c_str(),
               s.framingName.c_str());
  baseline::Server server(std::move(s.listener), std::move(signals), s.framing, s.limits);
  return server.run();
}
