// minimal_uring: the io_uring counterpart of `minimal`, so that reverbd's io_uring backend is
// judged against the best one thread can do with io_uring, as its epoll backend is against
// `minimal` (what frevib's io_uring-echo-server is to epoll echo servers).
//
// One thread, one ring (SINGLE_ISSUER | DEFER_TASKRUN, falling back like reverbd's backend):
// multishot accept, one multishot recv per connection into a provided-buffer ring, complete frames
// reversed in place in the ring buffer (InPlaceReverser, as `minimal`), copied to the connection's
// output and sent with an io_uring send; one send in flight per connection, later replies queue
// behind it. Everything goes through one io_uring_enter per loop round. A connection whose queued
// output passes 1 MiB stops receiving until it drains, so a slow reader cannot make the server
// buffer without bound. A connection's fd is closed only once no request on it is in flight, so a
// completion can never name a reused fd. SIGINT/SIGTERM (a signalfd read through the ring) end the
// loop with exit status 0. Needs Linux 6.0 (multishot recv) and liburing 2.3.
//
// Usage: minimal_uring [--listen HOST:PORT] [--framing chunk|line|length] [--max-line N]
//                      [--max-frame N]
// Prints "minimal_uring ready: listening on HOST:PORT framing=F" on stderr once it accepts.
#include <liburing.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/net.h"
#include "in_place.h"
#include "start_up.h"

namespace reverb::baseline {
namespace {

constexpr unsigned kBufferCount = 512;  // a power of two
constexpr unsigned kBufferSize = 16 * 1024;
constexpr uint16_t kBufferGroup = 0;
constexpr size_t kPauseAt = 1 << 20;  // queued output that stops receiving

enum class Op : uint8_t { kAccept = 1, kRecv = 2, kSend = 3, kSignal = 4, kCancel = 5 };

uint64_t pack(Op op, int fd) noexcept {
  return (uint64_t{static_cast<uint8_t>(op)} << 32) | static_cast<uint32_t>(fd);
}

struct Connection {
  Connection(int fd, Framing framing, FrameLimits limits) : socket(fd), reverser(framing, limits) {}
  UniqueFd socket;
  InPlaceReverser reverser;
  Buffer out;       // replies waiting for the send in flight to finish
  Buffer inflight;  // the bytes of the send in flight
  bool sending = false;
  bool recvArmed = false;
  bool paused = false;  // receiving stopped: out is past kPauseAt
  bool done = false;    // no more input (EOF, error or protocol error): close once idle
};

class Server {
 public:
  Server(UniqueFd listener, UniqueFd signals, Framing framing, FrameLimits limits)
      : listener_(std::move(listener)),
        signals_(std::move(signals)),
        framing_(framing),
        limits_(limits) {}

  ~Server() {
    connections_.clear();
    if (ringReady_) io_uring_queue_exit(&ring_);
    if (buffers_ != nullptr) ::munmap(buffers_, size_t{kBufferCount} * kBufferSize);
    if (bufRing_ != nullptr) ::munmap(bufRing_, kBufferCount * sizeof(io_uring_buf));
  }

  // Sets up the ring and the buffer ring and arms accept; returns 0 or an exit status.
  int start() {
    if (int r = setUp(); r != 0) return fail("io_uring set-up", -r);
    armAccept();
    io_uring_sqe* sqe = sqeOrDie();
    io_uring_prep_read(sqe, signals_.get(), &signal_, sizeof signal_, 0);
    io_uring_sqe_set_data64(sqe, pack(Op::kSignal, signals_.get()));
    return 0;
  }

  // Serves until SIGINT/SIGTERM; returns the exit status.
  int run() {
    io_uring_cqe* batch[256];
    for (;;) {
      io_uring_cqe* first = nullptr;
      int r = io_uring_submit_and_wait_timeout(&ring_, &first, 1, nullptr, nullptr);
      if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY) return fail("io_uring_enter", -r);
      for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&ring_, batch, 256);
        if (n == 0) {
          if (!io_uring_cq_has_overflow(&ring_)) break;
          (void)io_uring_get_events(&ring_);
          continue;
        }
        for (unsigned i = 0; i < n; ++i) {
          if (!handle(*batch[i])) return 0;
        }
        io_uring_cq_advance(&ring_, n);
        if (recycled_ > 0) {
          io_uring_buf_ring_advance(bufRing_, recycled_);
          recycled_ = 0;
        }
      }
    }
  }

 private:
  static int fail(const char* what, int error) {
    std::fprintf(stderr, "minimal_uring: %s: %s\n", what, std::strerror(error));
    return 1;
  }

  int setUp() {
    const unsigned attempts[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                 IORING_SETUP_COOP_TASKRUN, 0};
    int r = -EINVAL;
    for (unsigned flags : attempts) {
      io_uring_params params{};
      params.flags = flags | IORING_SETUP_CQSIZE;
      params.cq_entries = 16384;
      r = io_uring_queue_init_params(1024, &ring_, &params);
      if (r != -EINVAL) break;
    }
    if (r != 0) return r;
    ringReady_ = true;
    (void)io_uring_register_ring_fd(&ring_);
    void* ring = ::mmap(nullptr, kBufferCount * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                        MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    void* buffers = ::mmap(nullptr, size_t{kBufferCount} * kBufferSize, PROT_READ | PROT_WRITE,
                           MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring == MAP_FAILED || buffers == MAP_FAILED) return -ENOMEM;
    bufRing_ = static_cast<io_uring_buf_ring*>(ring);
    buffers_ = static_cast<char*>(buffers);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(bufRing_);
    reg.ring_entries = kBufferCount;
    reg.bgid = kBufferGroup;
    if (int rr = io_uring_register_buf_ring(&ring_, &reg, 0); rr != 0) return rr;
    io_uring_buf_ring_init(bufRing_);
    for (unsigned i = 0; i < kBufferCount; ++i) recycle(static_cast<uint16_t>(i));
    io_uring_buf_ring_advance(bufRing_, recycled_);
    recycled_ = 0;
    return 0;
  }

  io_uring_sqe* sqeOrDie() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      (void)io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe == nullptr) {
      std::fprintf(stderr, "minimal_uring: submission queue stuck full\n");
      std::abort();
    }
    return sqe;
  }

  void recycle(uint16_t id) noexcept {
    io_uring_buf_ring_add(bufRing_, buffers_ + size_t{id} * kBufferSize, kBufferSize, id,
                          io_uring_buf_ring_mask(kBufferCount), recycled_++);
  }

  void armAccept() {
    io_uring_sqe* sqe = sqeOrDie();
    io_uring_prep_multishot_accept(sqe, listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, pack(Op::kAccept, listener_.get()));
  }

  void armRecv(Connection& c) {
    if (c.recvArmed || c.paused || c.done) return;
    io_uring_sqe* sqe = sqeOrDie();
    io_uring_prep_recv_multishot(sqe, c.socket.get(), nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, pack(Op::kRecv, c.socket.get()));
    c.recvArmed = true;
  }

  void startSend(Connection& c) {
    if (c.sending || c.out.empty()) return;
    c.inflight.swap(c.out);
    sendInflight(c);
  }

  void sendInflight(Connection& c) {
    io_uring_sqe* sqe = sqeOrDie();
    io_uring_prep_send(sqe, c.socket.get(), c.inflight.data(), c.inflight.size(), MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, pack(Op::kSend, c.socket.get()));
    c.sending = true;
  }

  // Ends input on c; the connection closes once its last request in flight completes.
  void finish(Connection& c, bool abort) {
    c.done = true;
    if (abort) {
      c.out.clear();
      ::shutdown(c.socket.get(), SHUT_RDWR);  // ends the recv and any send in flight
    } else if (c.recvArmed) {
      io_uring_sqe* sqe = sqeOrDie();
      io_uring_prep_cancel64(sqe, pack(Op::kRecv, c.socket.get()), 0);
      io_uring_sqe_set_data64(sqe, pack(Op::kCancel, c.socket.get()));
    }
    closeIfIdle(c);
  }

  void closeIfIdle(Connection& c) {
    if (!c.done || c.recvArmed || c.sending) return;
    if (!c.out.empty()) return startSend(c);
    connections_[static_cast<size_t>(c.socket.get())].reset();
    if (acceptPaused_) {
      acceptPaused_ = false;
      armAccept();
    }
  }

  void onData(Connection& c, char* data, size_t n, bool eof) {
    auto reply = c.reverser.feed(data, n, eof);
    if (!reply) return finish(c, false);  // a protocol error: answer what came before, close
    c.out.append(reply->data(), reply->size());
    startSend(c);
    if (c.out.size() > kPauseAt && !c.paused && c.recvArmed) {
      c.paused = true;
      io_uring_sqe* sqe = sqeOrDie();
      io_uring_prep_cancel64(sqe, pack(Op::kRecv, c.socket.get()), 0);
      io_uring_sqe_set_data64(sqe, pack(Op::kCancel, c.socket.get()));
    }
    if (eof) finish(c, false);
  }

  Connection* connection(int fd) {
    if (fd < 0 || static_cast<size_t>(fd) >= connections_.size()) return nullptr;
    return connections_[static_cast<size_t>(fd)].get();
  }

  // Returns false when a stop signal arrived.
  bool handle(const io_uring_cqe& cqe) {
    const auto op = static_cast<Op>(cqe.user_data >> 32);
    const auto fd = static_cast<int>(static_cast<uint32_t>(cqe.user_data));
    const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
    switch (op) {
      case Op::kSignal:
        return false;
      case Op::kCancel:
        return true;
      case Op::kAccept: {
        if (cqe.res >= 0) {
          auto c = std::make_unique<Connection>(cqe.res, framing_, limits_);
          if (connections_.size() <= static_cast<size_t>(cqe.res)) {
            connections_.resize(static_cast<size_t>(cqe.res) * 2 + 64);
          }
          armRecv(*c);
          connections_[static_cast<size_t>(cqe.res)] = std::move(c);
        }
        if (!more) {
          const int error = cqe.res < 0 ? -cqe.res : 0;
          if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
            // Out of descriptors: accepting again now would fail again, in a busy loop. As
            // minimal does, wait until a connection closes.
            acceptPaused_ = true;
          } else {
            armAccept();
          }
        }
        return true;
      }
      case Op::kRecv: {
        char* data = nullptr;
        if (cqe.flags & IORING_CQE_F_BUFFER) {
          const auto id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
          data = buffers_ + size_t{id} * kBufferSize;
          recycle(id);  // seen by the kernel at the batch's advance, after onData copied
        }
        Connection* c = connection(fd);
        if (c == nullptr) return true;
        if (!more) c->recvArmed = false;
        if (cqe.res > 0 && !c->done) {
          onData(*c, data, static_cast<size_t>(cqe.res), false);
        } else if (cqe.res == 0 && !c->done) {
          onData(*c, nullptr, 0, true);
          return true;
        } else if (cqe.res < 0 && cqe.res != -ENOBUFS && cqe.res != -ECANCELED && !c->done) {
          finish(*c, true);
          return true;
        }
        c = connection(fd);
        if (c == nullptr) return true;
        if (c->done) {
          closeIfIdle(*c);
        } else {
          armRecv(*c);
        }
        return true;
      }
      case Op::kSend: {
        Connection* c = connection(fd);
        if (c == nullptr) return true;
        c->sending = false;
        if (cqe.res < 0) {
          c->inflight.clear();
          finish(*c, true);
          return true;
        }
        c->inflight.consume(static_cast<size_t>(cqe.res));
        if (!c->inflight.empty()) {
          sendInflight(*c);  // a short send: the rest goes first
          return true;
        }
        c->inflight.shrinkIfIdle(64 * 1024);
        startSend(*c);
        if (c->paused && c->out.size() <= kPauseAt / 2) {
          c->paused = false;
          armRecv(*c);
        }
        closeIfIdle(*c);
        return true;
      }
    }
    return true;
  }

  UniqueFd listener_;
  UniqueFd signals_;
  Framing framing_;
  FrameLimits limits_;
  io_uring ring_{};
  bool ringReady_ = false;
  io_uring_buf_ring* bufRing_ = nullptr;
  char* buffers_ = nullptr;
  int recycled_ = 0;
  bool acceptPaused_ = false;  // out of descriptors: accept again when a connection closes
  signalfd_siginfo signal_{};
  std::vector<std::unique_ptr<Connection>> connections_;  // indexed by fd
};

}  // namespace
}  // namespace reverb::baseline

int main(int argc, char** argv) {
  using namespace reverb;
  auto started = baseline::startUp(
      "minimal_uring",
      "minimal_uring: the smallest one-thread io_uring reversal server (a benchmark baseline)",
      argc, argv);
  if (int* status = std::get_if<int>(&started)) return *status;
  baseline::StartUp& s = std::get<baseline::StartUp>(started);
  UniqueFd signals(::signalfd(-1, &s.stopSignals, SFD_CLOEXEC));
  if (!signals.valid()) {
    std::perror("minimal_uring: signalfd");
    return 1;
  }
  baseline::Server server(std::move(s.listener), std::move(signals), s.framing, s.limits);
  if (int status = server.start(); status != 0) return status;
  std::fprintf(stderr, "minimal_uring ready: listening on %s framing=%s\n",
               s.bound.toString().c_str(), s.framingName.c_str());
  return server.run();
}
