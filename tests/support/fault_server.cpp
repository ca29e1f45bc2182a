#include "support/fault_server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <string>

namespace reverb::testing {
namespace {

constexpr uint64_t kListenTag = UINT64_MAX;
constexpr uint64_t kStopTag = UINT64_MAX - 1;

struct Client {
  UniqueFd fd;
  Framer framer;
  std::string in;
  std::string out;
  uint64_t replies = 0;
  std::string held;  // kSwapReplies: a reply kept back to go out after the next one
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
  epoll_event events[64];
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
      if (tag == kListenTag) {
        for (;;) {
          int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setNoDelay(fd);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = static_cast<uint64_t>(fd);
          epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
          clients.emplace(fd, Client{UniqueFd(fd), Framer(options_.framing, FrameLimits{}), {}, {}, 0, {}, false});
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
        ssize_t got = ::recv(c.fd.get(), buf, sizeof buf, 0);
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
              c.out += reply;
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
