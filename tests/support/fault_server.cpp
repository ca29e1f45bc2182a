#include "support/fault_server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <string>

namespace reverb::testing {
namespace {

constexpr uint64_t kListenTag = UINT64_MAX;
constexpr uint64_t kStopTag = UINT64_MAX - 1;
constexpr uint64_t kTimerTag = UINT64_MAX - 2;

int64_t monotonicNanos() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// When the data a recvmsg() returned reached the socket, on CLOCK_MONOTONIC: the kernel's
// SCM_TIMESTAMPNS (CLOCK_REALTIME) moved by the clocks' current offset; now if there is none.
int64_t arrivalTime(msghdr& msg) {
  const int64_t now = monotonicNanos();
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      timespec stamp{};
      std::memcpy(&stamp, CMSG_DATA(c), sizeof stamp);
      timespec real{};
      clock_gettime(CLOCK_REALTIME, &real);
      const int64_t age =
          (real.tv_sec - stamp.tv_sec) * 1'000'000'000LL + (real.tv_nsec - stamp.tv_nsec);
      return now - std::max<int64_t>(age, 0);
    }
  }
  return now;
}

// Serial server: an answer waiting for its turn.
struct Queued {
  int fd = -1;
  uint64_t client = 0;  // Client::id: the fd may have been closed and reused since
  int64_t arrived = 0;  // CLOCK_MONOTONIC nanoseconds
  std::string reply;
};

struct Client {
  uint64_t id = 0;
  UniqueFd fd;
  Framer framer;
  std::string in{};
  std::string out{};
  uint64_t replies = 0;
  std::string held{};  // kSwapReplies: a reply kept back to go out after the next one
  bool closing = false;
};

}  // namespace

Result<std::unique_ptr<FaultServer>> FaultServer::start(FaultServerOptions options) {
  std::unique_ptr<FaultServer> server(new FaultServer(options));
  auto any = parseAddress(options.listen);
  if (!any) return any.error();
  auto listen = listenOn(*any, 1024);
  if (!listen) return listen.error();
  server->listen_ = std::move(*listen);
  auto bound = localAddress(server->listen_.get());
  if (!bound) return bound.error();
  server->address_ = *bound;
  server->epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  server->stop_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!server->epoll_.valid() || !server->stop_.valid()) return errnoError("epoll/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  epoll_ctl(server->epoll_.get(), EPOLL_CTL_ADD, server->listen_.get(), &ev);
  ev.data.u64 = kStopTag;
  epoll_ctl(server->epoll_.get(), EPOLL_CTL_ADD, server->stop_.get(), &ev);
  if (options.serviceTime.count() > 0) {
    server->timer_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!server->timer_.valid()) return errnoError("timerfd_create");
    ev.data.u64 = kTimerTag;
    epoll_ctl(server->epoll_.get(), EPOLL_CTL_ADD, server->timer_.get(), &ev);
  }
  server->thread_ = std::thread([s = server.get()] { s->serve(); });
  return server;
}

FaultServer::~FaultServer() {
  uint64_t one = 1;
  if (stop_.valid()) (void)!::write(stop_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void FaultServer::serve() noexcept {
  std::map<int, Client> clients;
  uint64_t nextClientId = 1;
  epoll_event events[64];
  // Serial server: answers in arrival order; the one at the head of the queue is in service and
  // due serviceTime after the previous answer's due time or its own arrival, whichever is later.
  // A request whose client left before its turn costs nothing (its connection is gone, as a
  // server that drops a closed connection's work), so one load run leaves no backlog to the next.
  std::deque<Queued> queue;
  int64_t lastDue = 0;
  int64_t headDue = 0;
  const int64_t service = options_.serviceTime.count();
  auto clientOf = [&](const Queued& q) -> Client* {
    auto it = clients.find(q.fd);
    return it != clients.end() && it->second.id == q.client ? &it->second : nullptr;
  };
  // Drops the head's requests whose client left, then starts serving the head, if any.
  auto startHead = [&] {
    while (!queue.empty() && clientOf(queue.front()) == nullptr) queue.pop_front();
    if (queue.empty()) return;
    headDue = std::max(lastDue, queue.front().arrived) + service;
    itimerspec at{};
    at.it_value.tv_sec = headDue / 1'000'000'000LL;
    at.it_value.tv_nsec = headDue % 1'000'000'000LL;
    timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &at, nullptr);
  };
  auto flush = [&](Client& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      c.closing = true;
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
    ev.data.u64 = static_cast<uint64_t>(c.fd.get());
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
  };
  for (;;) {
    int n = epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kStopTag) return;
      if (tag == kTimerTag) {
        uint64_t expirations = 0;
        (void)!::read(timer_.get(), &expirations, sizeof expirations);
        // Every answer that is due goes out, so a late wake-up costs latency, not capacity.
        const int64_t now = monotonicNanos();
        while (!queue.empty() && headDue <= now) {
          Queued q = std::move(queue.front());
          queue.pop_front();
          lastDue = headDue;
          if (Client* c = clientOf(q)) {
            c->out += q.reply;
            flush(*c);
            if (c->closing) clients.erase(q.fd);
          }
          startHead();
        }
        continue;
      }
      if (tag == kListenTag) {
        for (;;) {
          int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setNoDelay(fd);
          if (service > 0) {
            // The kernel stamps each read with the time its data arrived: the serial server's
            // clock starts then, however late this thread gets to run.
            int on = 1;
            setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
          }
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = static_cast<uint64_t>(fd);
          epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
          clients.emplace(fd, Client{.id = nextClientId++,
                                     .fd = UniqueFd(fd),
                                     .framer = Framer(options_.framing, FrameLimits{})});
        }
        continue;
      }
      auto it = clients.find(static_cast<int>(tag));
      if (it == clients.end()) continue;
      Client& c = it->second;
      if (events[i].events & EPOLLOUT) {
        flush(c);
        if (c.closing) {
          clients.erase(it);
          continue;
        }
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        char buf[65536];
        iovec iov{buf, sizeof buf};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t got = ::recvmsg(c.fd.get(), &msg, 0);
        const int64_t arrived = service > 0 ? arrivalTime(msg) : 0;
        if (got <= 0) {
          if (got < 0 && errno == EAGAIN) continue;
          clients.erase(it);  // closes the fd, which leaves the epoll set
          continue;
        }
        c.in.append(buf, static_cast<size_t>(got));
        for (;;) {
          Frame frame = c.framer.next(c.in, false);
          if (frame.status != Frame::Status::kMessage) break;
          std::string reply(replySize(options_.framing, frame), '\0');
          writeReply(options_.framing, options_.unit, frame, reply.data());
          c.in.erase(0, frame.consumed);
          const uint64_t serial = ++replies_;
          const uint64_t local = ++c.replies;
          switch (options_.fault) {
            case Fault::kNoReply:
              ++faults_;
              break;
            case Fault::kResetInsteadOfReply:
              if (serial % options_.every == 0) {
                linger lin{1, 0};
                setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
                c.closing = true;
                ++faults_;
              } else {
                c.out += reply;
              }
              break;
            case Fault::kNone:
              if (service > 0) {
                queue.push_back(Queued{c.fd.get(), c.id, arrived, std::move(reply)});
                if (queue.size() == 1) startHead();
              } else {
                c.out += reply;
              }
              break;
            case Fault::kFlipByte:
              if (serial % options_.every == 0) {
                reply[reply.size() / 2] ^= 0x20;
                ++faults_;
              }
              c.out += reply;
              break;
            case Fault::kSwapReplies:
              if (local % options_.every == 0) {
                c.held = reply;  // goes out after the next reply
                ++faults_;
              } else {
                c.out += reply;
                c.out += c.held;
                c.held.clear();
              }
              break;
            case Fault::kDropMidReply:
              if (serial % options_.every == 0) {
                c.out.append(reply, 0, reply.size() / 2);
                c.closing = true;
                ++faults_;
              } else {
                c.out += reply;
              }
              break;
          }
          if (c.closing) break;
        }
        flush(c);
        if (c.closing) {
          // Blocking-free best effort: whatever flush() could send went out; then FIN.
          clients.erase(it);
        }
      }
    }
  }
}

}  // namespace reverb::testing
