// EpollBackend: IoBackend on epoll, edge-triggered.
//
// Each connection is registered once, at accept, for EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
// and never modified on the request path: no EPOLLONESHOT re-arm, no EPOLLOUT toggling. Reads go
// into one 64 KiB buffer owned by the backend; a read shorter than the buffer means the socket is
// drained (stream sockets return all they have), so a request costs one recv, not two.
// EPOLL_CTL_MOD happens only to resume a paused connection or to ask for writability after a
// short send, because MOD re-checks readiness and so cannot miss an edge that already passed.
//
// Errors that "cannot happen" are loud, never dropped (Redis's ae_epoll.c panics on them): an
// epoll_wait failure other than EINTR, or a listener that cannot be added back after an accept
// pause, is logged as critical and returned by poll(), which ends the loop (reverbd exits 1); a
// failed MOD for one connection is logged and reported through onError on the next poll(), so
// that connection is closed like any other dead one.
//
// Threading: loop-thread only, except wake(). Owns the epoll fd, the eventfd and the read buffer;
// borrows listeners and connections.
#pragma once

#include <sys/epoll.h>

#include <memory>
#include <optional>
#include <vector>

#include "server/io_backend.h"

namespace reverb {

class EpollBackend final : public IoBackend {
 public:
  // Fails if epoll_create1 or eventfd fails (fd exhaustion).
  static Result<std::unique_ptr<EpollBackend>> create();

  std::string_view name() const noexcept override { return "epoll"; }
  Result<void> addListener(int fd) override;
  void setAccepting(bool on) noexcept override;
  void acceptBacklog(IoEvents& events, int limit) noexcept override;
  Result<void> addConnection(Connection& c) override;
  void removeConnection(Connection& c, bool fdClosesNow) noexcept override;
  void setReading(Connection& c, bool on) noexcept override;
  void finishReading(IoEvents& events, Connection& c, size_t maxBytes) noexcept override;
  void wantWritable(Connection& c) noexcept override;
  Result<void> poll(IoEvents& events, int timeoutMs) noexcept override;
  void wake() noexcept override;

 private:
  struct Slot {
    Connection* connection = nullptr;  // borrowed; null when the fd is not a live connection
    bool reading = true;
    bool wantWritable = false;
    int failed = 0;  // errno of a failed re-arm, reported through onError by the next poll()
  };

  EpollBackend(UniqueFd epoll, UniqueFd wakeFd);
  Slot* slotFor(int fd) noexcept;
  // Accepts up to `limit` connections from one listener; stops at EAGAIN or an error.
  void acceptAll(IoEvents& events, int listenFd, int limit) noexcept;
  void readAll(IoEvents& events, int fd, bool peerClosed) noexcept;
  void rearm(Slot& slot, int fd) noexcept;
  // Calls onError for the connections whose re-arm failed since the last poll().
  void reportFailures(IoEvents& events) noexcept;

  UniqueFd epoll_;
  UniqueFd wakeFd_;
  std::vector<int> listeners_;
  bool accepting_ = true;
  std::vector<Slot> slots_;     // indexed by fd
  std::vector<int> failedFds_;  // fds whose Slot::failed is set
  std::optional<Error> fatal_;  // the loop must end: returned by the next poll()
  std::vector<epoll_event> events_;
  std::unique_ptr<char[]> readBuffer_;
};

}  // namespace reverb
