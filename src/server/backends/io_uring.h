// IoUringBackend: IoBackend on io_uring (liburing 2.3; Linux 6.0 or later for multishot recv).
//
// What it shows:
//  - multishot accept per listener and one multishot recv per connection, re-armed whenever a
//    completion arrives without IORING_CQE_F_MORE (ENOBUFS, a cancel, an error the kernel ends);
//  - a provided-buffer ring shared by every connection, mapped by hand (liburing 2.3 has no
//    io_uring_setup_buf_ring). onData copies, so each buffer goes back to the ring in the same
//    batch that received it and the ring can only run dry inside one batch;
//  - user_data = operation + slot + generation, never a bare fd: a completion for a connection
//    that closed (its fd number possibly reused by a new one) is recognised and dropped;
//  - SINGLE_ISSUER | DEFER_TASKRUN (the reactor is the only submitter), falling back to
//    COOP_TASKRUN and then to no flags on EINVAL; a registered ring fd; CQ overflow relies on
//    IORING_FEAT_NODROP (required) and is flushed before poll() returns;
//  - one io_uring_enter per poll round: submissions ride along with the wait. An io_uring_enter
//    failure other than EINTR/ETIME/EBUSY is logged as critical and returned by poll(), which ends
//    the loop (reverbd exits 1), as an epoll_wait failure does on epoll.
//
// A multishot recv can complete many buffers for one connection in one io_uring_enter (a fast
// sender with a large receive window: a megabyte and more). readInSmallSteps switches a connection
// close to its limits to single-shot recvs, re-armed from each completion: one buffer per round,
// so its pause takes effect within 16 KiB. Connections that stay far from their limits keep the
// multishot recv.
//
// Pausing a connection cancels its recv. Bytes that complete between the pause and the cancel
// are delivered all the same, in order (they are in memory already, and delivered they count
// against the connection's limits); an EOF or error that completes meanwhile is kept (the stash)
// and reported when reading resumes, so back-pressure never drops or reorders input. Removing a
// connection whose recv SQE was queued but not yet sent submits at once: sent later, after the fd
// closed, it would read from whichever socket reuses the fd number. The drain (finishReading) first
// ends the multishot recv and delivers what it completed, then reads what FIONREAD reports, so no
// byte the kernel received is lost in between. Writes stay with the workers (send(2) on the
// socket), as on epoll; wantWritable is a one-shot POLL_ADD(POLLOUT).
//
// Threading: loop-thread only (the thread that created it, which is the ring's single issuer),
// except wake(), which is thread-safe. Owns the ring, the buffer ring and its memory, and the
// wake-up eventfd; borrows listeners and connections.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/io_backend.h"

namespace reverb {

class IoUringBackend final : public IoBackend {
 public:
  // Whether this kernel runs everything the backend needs; if not, why (for --list-backends and
  // the log line that says why auto chose epoll). Sets up and tears down a small ring.
  struct Support {
    bool available = false;
    std::string reason;  // empty when available
  };
  static Support probe();

  // Fails with the reason the kernel gave (ENOSYS, EPERM under seccomp or io_uring_disabled, a
  // missing feature, memory).
  static Result<std::unique_ptr<IoUringBackend>> create();
  ~IoUringBackend() override;

  std::string_view name() const noexcept override { return "io_uring"; }
  // Setup flags the kernel accepted ("SINGLE_ISSUER|DEFER_TASKRUN", ...), for the start-up log.
  std::string_view setupMode() const noexcept { return setupMode_; }
  // Bytes of memory in the shared receive buffers.
  size_t bufferBytes() const noexcept;

  // What the buffer ring went through; loop thread only.
  struct Counters {
    uint64_t ringEmpty = 0;   // recvs ended with ENOBUFS (and were re-armed)
    uint64_t stale = 0;       // completions for connections already removed
    uint64_t buffersOut = 0;  // buffers the kernel filled that are not yet back in the ring
  };
  const Counters& counters() const noexcept { return counters_; }

  Result<void> addListener(int fd) override;
  void setAccepting(bool on) noexcept override;
  void acceptBacklog(IoEvents& events, int limit) noexcept override;
  Result<void> addConnection(Connection& c) override;
  void removeConnection(Connection& c, bool fdClosesNow) noexcept override;
  void setReading(Connection& c, bool on) noexcept override;
  void finishReading(IoEvents& events, Connection& c, size_t maxBytes) noexcept override;
  void wantWritable(Connection& c) noexcept override;
  void readInSmallSteps(Connection& c) noexcept override;
  Result<void> poll(IoEvents& events, int timeoutMs) noexcept override;
  void wake() noexcept override;

 private:
  struct Slot {
    Connection* connection = nullptr;  // borrowed; null when the slot is free
    uint32_t generation = 0;           // bumped when freed: older completions are stale
    bool reading = true;               // the reactor wants bytes
    bool recvArmed = false;            // a recv is in flight (until a CQE without MORE)
    bool multishotArmed = false;       // ... and it is a multishot one
    bool smallSteps = false;           // readInSmallSteps: single-shot recvs from now on
    bool pollOutArmed = false;         // a POLL_ADD(POLLOUT) is in flight
    bool eofSeen = false;              // recv returned 0 or failed: never re-arm
    bool eofStashed = false;           // ... while paused: reported on resume
    int errorStashed = 0;              // a receive error that completed while paused
    bool discardLate = false;          // finishReading ran: later bytes came too late (drain)
    uint64_t queuedBatch = 0;          // the submission batch of its last SQE (batch_: not sent)
  };
  struct Listener {
    int fd = -1;
    bool armed = false;  // a multishot accept is in flight
  };

  IoUringBackend() = default;
  Result<void> init();

  io_uring_sqe* nextSqe() noexcept;
  // Sends the queued SQEs to the kernel now (and starts a new batch); returns io_uring_submit's.
  int submitNow() noexcept;
  // Handles every completion the CQ holds, overflowed ones included, and returns the buffers.
  void reap(IoEvents& events) noexcept;
  void armAccept(uint32_t listener) noexcept;
  void armRecv(uint32_t slot) noexcept;
  void armWake() noexcept;
  void cancel(uint64_t userData) noexcept;
  Slot* slotFor(const Connection& c) noexcept;
  Slot* liveSlot(uint32_t index, uint32_t generation) noexcept;

  void handle(IoEvents& events, const io_uring_cqe& cqe) noexcept;
  void onAcceptCqe(IoEvents& events, uint32_t listener, const io_uring_cqe& cqe) noexcept;
  void onRecvCqe(IoEvents& events, uint32_t index, uint32_t generation,
                 const io_uring_cqe& cqe) noexcept;
  // Reports a resumed slot's stashed EOF or error; always true (the slot may then be gone).
  bool deliverStash(IoEvents& events, uint32_t index) noexcept;
  void recycle(uint16_t bufferId) noexcept;

  io_uring ring_{};
  bool ringReady_ = false;
  std::string setupMode_;

  // The provided-buffer ring: kBufferCount buffers of kBufferSize in one mapping.
  io_uring_buf_ring* bufRing_ = nullptr;
  size_t bufRingBytes_ = 0;
  char* buffers_ = nullptr;
  int recycled_ = 0;    // buffers added since the last advance
  uint64_t batch_ = 1;  // the submission batch being filled; bumped by every submit
  Counters counters_;

  std::vector<Slot> slots_;
  std::vector<uint32_t> freeSlots_;
  std::vector<uint32_t> slotByFd_;  // connection fd -> slot index
  std::vector<uint32_t> resumed_;   // slots whose stashed EOF or error poll() reports first
  std::vector<Listener> listeners_;
  bool accepting_ = true;

  UniqueFd wakeFd_;
  uint64_t wakeValue_ = 0;  // the eventfd read's target; the ring writes it
};

}  // namespace reverb
