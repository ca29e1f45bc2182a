#include "server/backends/epoll.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "server/connection.h"

namespace reverb {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kMaxEvents = 256;
// Accepts per readiness report, so a flood of connections cannot starve established ones.
constexpr int kAcceptBatch = 128;

// epoll_event.data: the fd in the low half, what it is in the high half.
enum class Tag : uint32_t { kConnection = 0, kListener = 1, kWake = 2 };

uint64_t pack(Tag tag, int fd) noexcept {
  return (uint64_t{static_cast<uint32_t>(tag)} << 32) | static_cast<uint32_t>(fd);
}

constexpr uint32_t kConnectionEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

}  // namespace

Result<std::unique_ptr<EpollBackend>> EpollBackend::create() {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return errnoError("epoll_create1");
  UniqueFd wakeFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wakeFd.valid()) return errnoError("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = pack(Tag::kWake, wakeFd.get());
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wakeFd.get(), &ev) != 0) {
    return errnoError("epoll_ctl(eventfd)");
  }
  return std::unique_ptr<EpollBackend>(new EpollBackend(std::move(epoll), std::move(wakeFd)));
}

EpollBackend::EpollBackend(UniqueFd epoll, UniqueFd wakeFd)
    : epoll_(std::move(epoll)),
      wakeFd_(std::move(wakeFd)),
      events_(kMaxEvents),
      readBuffer_(new char[kReadSize]) {}

Result<void> EpollBackend::addListener(int fd) {
  // Level-triggered: a listener with a backlog left over is reported again on the next poll.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = pack(Tag::kListener, fd);
  if (accepting_ && ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return errnoError("epoll_ctl(listener)");
  }
  listeners_.push_back(fd);
  return {};
}

void EpollBackend::setAccepting(bool on) noexcept {
  if (on == accepting_) return;
  accepting_ = on;
  for (int fd : listeners_) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = pack(Tag::kListener, fd);
    if (::epoll_ctl(epoll_.get(), on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev) != 0 && !fatal_) {
      // A listener left out would stop the server accepting for good, silently; one left in
      // while paused is level-triggered and would make the loop spin. Neither may go unnoticed.
      fatal_ = errnoError(on ? "epoll_ctl(ADD) of a listener after an accept pause"
                             : "epoll_ctl(DEL) of a listener for an accept pause");
      spdlog::critical("{}: ending the event loop", fatal_->message());
    }
  }
}

EpollBackend::Slot* EpollBackend::slotFor(int fd) noexcept {
  if (fd < 0 || static_cast<size_t>(fd) >= slots_.size()) return nullptr;
  Slot* slot = &slots_[static_cast<size_t>(fd)];
  return slot->connection ? slot : nullptr;
}

Result<void> EpollBackend::addConnection(Connection& c) {
  const int fd = c.fd();
  if (static_cast<size_t>(fd) >= slots_.size()) slots_.resize(static_cast<size_t>(fd) * 2 + 64);
  epoll_event ev{};
  ev.events = kConnectionEvents;
  ev.data.u64 = pack(Tag::kConnection, fd);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return errnoError("epoll_ctl(add)");
  slots_[static_cast<size_t>(fd)] = Slot{&c, true, false};
  return {};
}

void EpollBackend::removeConnection(Connection& c, bool fdClosesNow) noexcept {
  Slot* slot = slotFor(c.fd());
  if (slot == nullptr || slot->connection != &c) return;
  *slot = Slot{};
  // A closed fd leaves the epoll set by itself; one that a worker still holds must be taken out.
  if (!fdClosesNow) (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd(), nullptr);
}

void EpollBackend::rearm(Slot& slot, int fd) noexcept {
  // MOD re-evaluates readiness, so an edge that came while we were not listening is reported now.
  epoll_event ev{};
  ev.events = kConnectionEvents;
  ev.data.u64 = pack(Tag::kConnection, fd);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) == 0 || slot.failed != 0) return;
  // The connection would wait forever for an event that never comes. Close it as a dead one; the
  // report waits for the next poll() because the caller may be in the middle of using it.
  const int error = errno;
  spdlog::error("epoll_ctl(MOD) for {}: {}; closing the connection", slot.connection->peerName(),
                std::strerror(error));
  slot.reading = false;
  slot.wantWritable = false;
  slot.failed = error;
  failedFds_.push_back(fd);
}

void EpollBackend::reportFailures(IoEvents& events) noexcept {
  // By index: onError may not add failures (it only closes), but stay safe if it ever does.
  for (size_t i = 0; i < failedFds_.size(); ++i) {
    Slot* slot = slotFor(failedFds_[i]);
    if (slot == nullptr || slot->failed == 0) continue;  // closed (and maybe reused) meanwhile
    const int error = std::exchange(slot->failed, 0);
    events.onError(*slot->connection, error);
  }
  failedFds_.clear();
}

void EpollBackend::setReading(Connection& c, bool on) noexcept {
  Slot* slot = slotFor(c.fd());
  if (slot == nullptr || slot->reading == on || slot->failed != 0) return;
  slot->reading = on;
  if (on) rearm(*slot, c.fd());
}

void EpollBackend::wantWritable(Connection& c) noexcept {
  Slot* slot = slotFor(c.fd());
  if (slot == nullptr || slot->failed != 0) return;
  slot->wantWritable = true;
  rearm(*slot, c.fd());
}

void EpollBackend::finishReading(IoEvents& events, Connection& c, size_t maxBytes) noexcept {
  Slot* slot = slotFor(c.fd());
  if (slot == nullptr) return;
  // Read exactly what the kernel holds now, up to maxBytes; bytes that arrive later were not
  // received in time.
  int pending = 0;
  if (::ioctl(c.fd(), FIONREAD, &pending) != 0) pending = 0;
  pending = static_cast<int>(std::min(static_cast<size_t>(std::max(pending, 0)), maxBytes));
  slot->reading = false;
  while (pending > 0) {
    ssize_t n =
        ::recv(c.fd(), readBuffer_.get(), std::min(kReadSize, static_cast<size_t>(pending)), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending -= static_cast<int>(n);
    // A pause asked for by onData is ignored here: these bytes were received before the drain.
    events.onData(c, std::string_view(readBuffer_.get(), static_cast<size_t>(n)));
  }
}

void EpollBackend::readAll(IoEvents& events, int fd, bool peerClosed) noexcept {
  for (;;) {
    Slot* slot = slotFor(fd);
    if (slot == nullptr || !slot->reading) return;
    Connection& c = *slot->connection;
    ssize_t n = ::recv(fd, readBuffer_.get(), kReadSize, 0);
    if (n > 0) {
      events.onData(c, std::string_view(readBuffer_.get(), static_cast<size_t>(n)));
      // A short read drained the socket; new bytes bring a new edge. Only a pending FIN needs
      // one more read, to see the 0.
      if (static_cast<size_t>(n) < kReadSize && !peerClosed) return;
      continue;
    }
    if (n == 0) {
      slot->reading = false;
      events.onEof(c);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    slot->reading = false;
    events.onError(c, errno);
    return;
  }
}

void EpollBackend::acceptBacklog(IoEvents& events, int limit) noexcept {
  for (int fd : listeners_) acceptAll(events, fd, limit);
}

void EpollBackend::acceptAll(IoEvents& events, int listenFd, int limit) noexcept {
  for (int i = 0; i < limit; ++i) {
    int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      events.onAccept(UniqueFd(fd));
      continue;
    }
    switch (errno) {
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;  // that one connection is gone; the next may be fine
      case EAGAIN:
        return;
      default:
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying now would fail again and spin.
        events.onAcceptError(errno);
        return;
    }
  }
}

Result<void> EpollBackend::poll(IoEvents& events, int timeoutMs) noexcept {
  if (fatal_) return *fatal_;
  // A failure waiting to be reported must not wait for an unrelated event.
  if (!failedFds_.empty()) timeoutMs = 0;
  int n = ::epoll_wait(epoll_.get(), events_.data(), kMaxEvents, timeoutMs);
  if (n < 0 && errno != EINTR) {
    // EBADF, EFAULT, EINVAL: a bug, not a load condition. Retrying would fail again at once and
    // spin the reactor at 100% CPU while serving nobody.
    fatal_ = errnoError("epoll_wait");
    spdlog::critical("{}: ending the event loop", fatal_->message());
    return *fatal_;
  }
  events.onPolled();
  if (!failedFds_.empty()) reportFailures(events);
  for (int i = 0; i < n; ++i) {
    const uint32_t mask = events_[i].events;
    const auto tag = static_cast<Tag>(events_[i].data.u64 >> 32);
    const int fd = static_cast<int>(events_[i].data.u64 & 0xffffffffu);
    switch (tag) {
      case Tag::kWake: {
        uint64_t count;
        (void)!::read(fd, &count, sizeof count);
        events.onWake();
        break;
      }
      case Tag::kListener:
        if (accepting_) acceptAll(events, fd, kAcceptBatch);
        break;
      case Tag::kConnection: {
        Slot* slot = slotFor(fd);
        if (slot == nullptr) break;  // removed earlier in this batch
        if (mask & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          if (slot->reading) {
            readAll(events, fd, (mask & (EPOLLRDHUP | EPOLLHUP)) != 0);
          } else if (mask & EPOLLERR) {
            int error = 0;
            socklen_t length = sizeof error;
            (void)::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
            events.onError(*slot->connection, error ? error : ECONNRESET);
          }
          slot = slotFor(fd);
        }
        if (slot != nullptr && (mask & EPOLLOUT) && slot->wantWritable) {
          slot->wantWritable = false;
          events.onWritable(*slot->connection);
        }
        break;
      }
    }
  }
  return {};
}

void EpollBackend::wake() noexcept {
  uint64_t one = 1;
  (void)!::write(wakeFd_.get(), &one, sizeof one);
}

}  // namespace reverb
