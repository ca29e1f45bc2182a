#include "server/backends/io_uring.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "server/connection.h"

namespace reverb {
namespace {

// Submission and completion queue sizes. Completions outnumber submissions (multishot), so the CQ
// is larger; IORING_FEAT_NODROP keeps any overflow in the kernel until poll() flushes it.
constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 16384;

// The shared receive buffers: 512 x 16 KiB = 8 MiB. A recv takes one buffer whatever it reads, so
// small requests cost 16 KiB of ring for an instant; every buffer returns in the batch that used
// it, so the ring can run dry only when more than 512 receives complete in one batch, and then
// the affected recvs end with ENOBUFS and are re-armed after the batch.
constexpr unsigned kBufferCount = 512;  // a power of two, as the buffer ring requires
constexpr unsigned kBufferSize = 16 * 1024;
constexpr uint16_t kBufferGroup = 0;

// Accepts from each listener's backlog when a drain starts are done with accept4, as on epoll.
// user_data: operation in the top 8 bits, generation in the next 24, index in the low 32.
enum class Op : uint8_t { kAccept = 1, kRecv = 2, kPollOut = 3, kWake = 4, kCancel = 5 };

constexpr uint64_t pack(Op op, uint32_t index, uint32_t generation = 0) noexcept {
  return (uint64_t{static_cast<uint8_t>(op)} << 56) | (uint64_t{generation & 0xffffffu} << 32) |
         index;
}
constexpr Op opOf(uint64_t userData) noexcept {
  return static_cast<Op>(userData >> 56);
}
constexpr uint32_t generationOf(uint64_t userData) noexcept {
  return static_cast<uint32_t>(userData >> 32) & 0xffffffu;
}
constexpr uint32_t indexOf(uint64_t userData) noexcept {
  return static_cast<uint32_t>(userData);
}

constexpr uint32_t kNoSlot = UINT32_MAX;

// Sets up a ring with the best flags this kernel takes. Returns 0 or -errno; `mode` names them.
int setUpRing(io_uring& ring, unsigned entries, unsigned cqEntries, std::string& mode) {
  struct Attempt {
    unsigned flags;
    const char* name;
  };
  const Attempt attempts[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER|DEFER_TASKRUN"},
      {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
      {0, "no setup flags"},
  };
  int result = -EINVAL;
  for (const Attempt& attempt : attempts) {
    io_uring_params params{};
    params.flags = attempt.flags | IORING_SETUP_CQSIZE;
    params.cq_entries = cqEntries;
    result = io_uring_queue_init_params(entries, &ring, &params);
    if (result == 0) {
      if ((params.features & IORING_FEAT_NODROP) == 0) {
        io_uring_queue_exit(&ring);
        return -EOPNOTSUPP;  // completions could be lost on overflow (kernel older than 5.5)
      }
      mode = attempt.name;
      return 0;
    }
    if (result != -EINVAL) return result;  // ENOSYS, EPERM, ENOMEM: no other flags will help
  }
  return result;
}

std::string explain(int error) {
  switch (error) {
    case ENOSYS:
      return "the kernel has no io_uring (ENOSYS)";
    case EPERM: {
      std::string reason = "io_uring is not permitted (EPERM: seccomp, a container's policy";
      if (FILE* f = std::fopen("/proc/sys/kernel/io_uring_disabled", "re")) {
        int disabled = 0;
        if (std::fscanf(f, "%d", &disabled) == 1 && disabled != 0) {
          reason =
              "io_uring is disabled (EPERM: kernel.io_uring_disabled = " + std::to_string(disabled);
        }
        std::fclose(f);
      }
      return reason + ")";
    }
    case EOPNOTSUPP:
      return "the kernel lacks IORING_FEAT_NODROP (Linux 5.5 or later needed)";
    default:
      return std::string(std::strerror(error));
  }
}

}  // namespace

IoUringBackend::Support IoUringBackend::probe() {
  // Exercise the features the backend relies on, on a socketpair: a ring, a buffer ring (5.19)
  // and a multishot recv into it (6.0). Anything less is reported with the kernel's reason.
  auto backend = create();
  if (!backend) return {false, backend.error().message()};
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return {false, std::string("socketpair: ") + std::strerror(errno)};
  }
  UniqueFd a(pair[0]);
  UniqueFd b(pair[1]);
  IoUringBackend& ring = **backend;
  io_uring_sqe* sqe = ring.nextSqe();
  io_uring_prep_recv_multishot(sqe, a.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, pack(Op::kRecv, 0));
  if (::write(b.get(), "x", 1) != 1) return {false, "write to a socketpair failed"};
  io_uring_cqe* cqe = nullptr;
  int waited = io_uring_submit_and_wait(&ring.ring_, 1);
  if (waited >= 0) waited = io_uring_peek_cqe(&ring.ring_, &cqe);
  if (waited < 0 || cqe == nullptr) return {false, "io_uring_enter: " + explain(-waited)};
  const int res = cqe->res;
  const unsigned flags = cqe->flags;
  io_uring_cqe_seen(&ring.ring_, cqe);
  if (res == -EINVAL) return {false, "the kernel lacks multishot recv (Linux 6.0 or later needed)"};
  if (res != 1 || (flags & IORING_CQE_F_MORE) == 0 || (flags & IORING_CQE_F_BUFFER) == 0) {
    return {false, "multishot recv did not behave as expected (res " + std::to_string(res) + ")"};
  }
  return {true, {}};
}

Result<std::unique_ptr<IoUringBackend>> IoUringBackend::create() {
  std::unique_ptr<IoUringBackend> backend(new IoUringBackend());
  if (auto ready = backend->init(); !ready) return ready.error();
  return backend;
}

Result<void> IoUringBackend::init() {
  if (int r = setUpRing(ring_, kSqEntries, kCqEntries, setupMode_); r != 0) {
    return Error{std::error_code(-r, std::system_category()), "io_uring_setup: " + explain(-r)};
  }
  ringReady_ = true;
  // One fewer fd lookup per io_uring_enter; an old kernel without it works the same, slower.
  (void)io_uring_register_ring_fd(&ring_);

  bufRingBytes_ = kBufferCount * sizeof(io_uring_buf);
  void* ringMemory =
      ::mmap(nullptr, bufRingBytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (ringMemory == MAP_FAILED) return errnoError("mmap(buffer ring)");
  bufRing_ = static_cast<io_uring_buf_ring*>(ringMemory);
  void* bufferMemory = ::mmap(nullptr, size_t{kBufferCount} * kBufferSize, PROT_READ | PROT_WRITE,
                              MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (bufferMemory == MAP_FAILED) return errnoError("mmap(receive buffers)");
  buffers_ = static_cast<char*>(bufferMemory);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(bufRing_);
  reg.ring_entries = kBufferCount;
  reg.bgid = kBufferGroup;
  if (int r = io_uring_register_buf_ring(&ring_, &reg, 0); r != 0) {
    return Error{std::error_code(-r, std::system_category()),
                 r == -EINVAL
                     ? "io_uring_register_buf_ring: the kernel lacks provided-buffer rings "
                       "(Linux 5.19 or later needed)"
                     : "io_uring_register_buf_ring: " + explain(-r)};
  }
  io_uring_buf_ring_init(bufRing_);
  const int mask = io_uring_buf_ring_mask(kBufferCount);
  for (unsigned i = 0; i < kBufferCount; ++i) {
    io_uring_buf_ring_add(bufRing_, buffers_ + size_t{i} * kBufferSize, kBufferSize,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(bufRing_, kBufferCount);

  wakeFd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!wakeFd_.valid()) return errnoError("eventfd");
  armWake();
  return {};
}

IoUringBackend::~IoUringBackend() {
  // Closing the ring cancels every request still in flight and drops its file references.
  if (ringReady_) io_uring_queue_exit(&ring_);
  if (buffers_ != nullptr) ::munmap(buffers_, size_t{kBufferCount} * kBufferSize);
  if (bufRing_ != nullptr) ::munmap(bufRing_, bufRingBytes_);
}

size_t IoUringBackend::bufferBytes() const noexcept {
  return size_t{kBufferCount} * kBufferSize + bufRingBytes_;
}

io_uring_sqe* IoUringBackend::nextSqe() noexcept {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe != nullptr) return sqe;
  // The submission queue is full: hand it to the kernel now and take a fresh entry.
  (void)submitNow();
  sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    spdlog::critical("io_uring: no submission queue entry after a submit; giving up");
    std::abort();
  }
  return sqe;
}

int IoUringBackend::submitNow() noexcept {
  ++batch_;
  return io_uring_submit(&ring_);
}

void IoUringBackend::armWake() noexcept {
  io_uring_sqe* sqe = nextSqe();
  io_uring_prep_read(sqe, wakeFd_.get(), &wakeValue_, sizeof wakeValue_, 0);
  io_uring_sqe_set_data64(sqe, pack(Op::kWake, 0));
}

void IoUringBackend::armAccept(uint32_t listener) noexcept {
  Listener& l = listeners_[listener];
  if (l.armed) return;
  io_uring_sqe* sqe = nextSqe();
  // Blocking sockets: workers send with MSG_DONTWAIT and the drain reads only what FIONREAD
  // reports, and io_uring then never sees O_NONBLOCK's EAGAIN.
  io_uring_prep_multishot_accept(sqe, l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, pack(Op::kAccept, listener));
  l.armed = true;
}

void IoUringBackend::armRecv(uint32_t index) noexcept {
  Slot& slot = slots_[index];
  if (slot.recvArmed || slot.eofSeen || !slot.reading) return;
  io_uring_sqe* sqe = nextSqe();
  if (slot.smallSteps) {
    // One buffer, then the completion re-arms (it carries no IORING_CQE_F_MORE).
    io_uring_prep_recv(sqe, slot.connection->fd(), nullptr, 0, 0);
  } else {
    io_uring_prep_recv_multishot(sqe, slot.connection->fd(), nullptr, 0, 0);
  }
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, pack(Op::kRecv, index, slot.generation));
  slot.recvArmed = true;
  slot.multishotArmed = !slot.smallSteps;
  slot.queuedBatch = batch_;
}

void IoUringBackend::readInSmallSteps(Connection& c) noexcept {
  Slot* slot = slotFor(c);
  if (slot == nullptr || slot->smallSteps) return;
  slot->smallSteps = true;
  // The multishot recv ends with its cancel's completion, which re-arms a single-shot one.
  if (slot->recvArmed && slot->multishotArmed) {
    cancel(pack(Op::kRecv, static_cast<uint32_t>(slot - slots_.data()), slot->generation));
  }
}

void IoUringBackend::cancel(uint64_t userData) noexcept {
  io_uring_sqe* sqe = nextSqe();
  io_uring_prep_cancel64(sqe, userData, 0);
  io_uring_sqe_set_data64(sqe, pack(Op::kCancel, 0));
}

IoUringBackend::Slot* IoUringBackend::slotFor(const Connection& c) noexcept {
  const int fd = c.fd();
  if (fd < 0 || static_cast<size_t>(fd) >= slotByFd_.size()) return nullptr;
  const uint32_t index = slotByFd_[static_cast<size_t>(fd)];
  if (index == kNoSlot || slots_[index].connection != &c) return nullptr;
  return &slots_[index];
}

IoUringBackend::Slot* IoUringBackend::liveSlot(uint32_t index, uint32_t generation) noexcept {
  if (index >= slots_.size()) return nullptr;
  Slot& slot = slots_[index];
  if (slot.connection == nullptr || (slot.generation & 0xffffffu) != generation) return nullptr;
  return &slot;
}

Result<void> IoUringBackend::addListener(int fd) {
  listeners_.push_back(Listener{fd, false});
  if (accepting_) armAccept(static_cast<uint32_t>(listeners_.size() - 1));
  return {};
}

void IoUringBackend::setAccepting(bool on) noexcept {
  if (on == accepting_) return;
  accepting_ = on;
  for (uint32_t i = 0; i < listeners_.size(); ++i) {
    if (on) {
      armAccept(i);
    } else if (listeners_[i].armed) {
      // The accept's last completion (ECANCELED, without MORE) clears `armed`.
      cancel(pack(Op::kAccept, i));
    }
  }
}

void IoUringBackend::acceptBacklog(IoEvents& events, int limit) noexcept {
  for (const Listener& l : listeners_) {
    for (int i = 0; i < limit; ++i) {
      int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        events.onAccept(UniqueFd(fd));
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      break;  // EAGAIN (listeners are non-blocking) or out of descriptors: the backlog waits
    }
  }
}

Result<void> IoUringBackend::addConnection(Connection& c) {
  const int fd = c.fd();
  if (static_cast<size_t>(fd) >= slotByFd_.size()) {
    slotByFd_.resize(static_cast<size_t>(fd) * 2 + 64, kNoSlot);
  }
  uint32_t index;
  if (!freeSlots_.empty()) {
    index = freeSlots_.back();
    freeSlots_.pop_back();
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[index];
  const uint32_t generation = slot.generation;
  slot = Slot{};
  slot.generation = generation;
  slot.connection = &c;
  slotByFd_[static_cast<size_t>(fd)] = index;
  armRecv(index);
  return {};
}

void IoUringBackend::removeConnection(Connection& c, bool /*fdClosesNow*/) noexcept {
  Slot* slot = slotFor(c);
  if (slot == nullptr) return;
  const auto index = static_cast<uint32_t>(slot - slots_.data());
  // The kernel holds the socket while a request on it is in flight, so a close() alone would not
  // end it: cancel, whether or not the fd closes now. Completions still on their way carry the
  // old generation and are dropped.
  if (slot->recvArmed) cancel(pack(Op::kRecv, index, slot->generation));
  if (slot->pollOutArmed) cancel(pack(Op::kPollOut, index, slot->generation));
  // An SQE of this connection still queued would reach the kernel only after the fd closed, and
  // then act on whichever socket reuses the number: send it (and the cancels) now.
  const bool unsent = slot->queuedBatch == batch_;
  slotByFd_[static_cast<size_t>(c.fd())] = kNoSlot;
  const uint32_t next = (slot->generation + 1) & 0xffffffu;
  *slot = Slot{};
  slot->generation = next;
  freeSlots_.push_back(index);
  if (unsent) (void)submitNow();
}

void IoUringBackend::setReading(Connection& c, bool on) noexcept {
  Slot* slot = slotFor(c);
  if (slot == nullptr || slot->reading == on) return;
  const auto index = static_cast<uint32_t>(slot - slots_.data());
  slot->reading = on;
  if (!on) {
    // Bytes that complete before the cancel lands are still delivered (see onRecvCqe); an EOF or
    // error waits for the resume.
    if (slot->recvArmed) cancel(pack(Op::kRecv, index, slot->generation));
    return;
  }
  slot->discardLate = false;
  if (slot->eofStashed || slot->errorStashed != 0) {
    resumed_.push_back(index);  // poll() delivers it before any newer completion
  }
  armRecv(index);
}

void IoUringBackend::finishReading(IoEvents& events, Connection& c, size_t maxBytes) noexcept {
  Slot* slot = slotFor(c);
  if (slot == nullptr) return;
  const auto index = static_cast<uint32_t>(slot - slots_.data());
  const uint32_t generation = slot->generation;
  // First end the multishot recv, delivering whatever it completes meanwhile: a submit forced by a
  // full SQ (or task work, in the fallback modes) may already have run it, and bytes it took are
  // no longer counted by FIONREAD. Other connections' completions are handled on the way.
  if (slot->recvArmed) {
    cancel(pack(Op::kRecv, index, generation));
    for (int round = 0; round < 64; ++round) {
      const int r = io_uring_submit_and_get_events(&ring_);
      ++batch_;
      if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN) break;
      reap(events);
      slot = liveSlot(index, generation);
      if (slot == nullptr) return;
      if (!slot->recvArmed) break;
    }
  }
  // Then exactly what the kernel holds now, up to maxBytes; with no recv in flight, nothing else
  // can take it.
  int pending = 0;
  if (::ioctl(c.fd(), FIONREAD, &pending) != 0) pending = 0;
  pending = static_cast<int>(std::min(static_cast<size_t>(std::max(pending, 0)), maxBytes));
  slot->reading = false;
  slot->discardLate = true;
  if (slot->recvArmed) cancel(pack(Op::kRecv, index, generation));  // the 64 rounds ran out
  std::string bytes;
  while (pending > 0) {
    bytes.resize(std::min<size_t>(kBufferSize, static_cast<size_t>(pending)));
    ssize_t n = ::recv(c.fd(), bytes.data(), bytes.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending -= static_cast<int>(n);
    // A pause asked for by onData is ignored here: these bytes were received before the drain.
    events.onData(c, std::string_view(bytes.data(), static_cast<size_t>(n)));
  }
}

void IoUringBackend::wantWritable(Connection& c) noexcept {
  Slot* slot = slotFor(c);
  if (slot == nullptr || slot->pollOutArmed) return;
  const auto index = static_cast<uint32_t>(slot - slots_.data());
  io_uring_sqe* sqe = nextSqe();
  io_uring_prep_poll_add(sqe, c.fd(), POLLOUT);
  io_uring_sqe_set_data64(sqe, pack(Op::kPollOut, index, slot->generation));
  slot->pollOutArmed = true;
  slot->queuedBatch = batch_;
}

void IoUringBackend::recycle(uint16_t bufferId) noexcept {
  io_uring_buf_ring_add(bufRing_, buffers_ + size_t{bufferId} * kBufferSize, kBufferSize, bufferId,
                        io_uring_buf_ring_mask(kBufferCount), recycled_++);
}

bool IoUringBackend::deliverStash(IoEvents& events, uint32_t index) noexcept {
  Slot* slot = &slots_[index];
  if (slot->connection == nullptr || !slot->reading) return true;
  Connection& c = *slot->connection;
  if (slot->eofStashed) {
    slot->eofStashed = false;
    slot->reading = false;
    events.onEof(c);
  } else if (slot->errorStashed != 0) {
    const int error = slot->errorStashed;
    slot->errorStashed = 0;
    slot->reading = false;
    events.onError(c, error);
  }
  return true;
}

void IoUringBackend::onAcceptCqe(IoEvents& events, uint32_t listener,
                                 const io_uring_cqe& cqe) noexcept {
  Listener& l = listeners_[listener];
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) l.armed = false;
  if (cqe.res >= 0) {
    // Even after a pause was asked for: the kernel admitted the client, and the reactor decides
    // (it refuses only while draining, as for any accept).
    events.onAccept(UniqueFd(cqe.res));
  } else {
    switch (-cqe.res) {
      case ECANCELED:
      case EINTR:
      case EAGAIN:
      case ECONNABORTED:
      case EPROTO:
        break;  // that one connection is gone, or our own cancel
      default:
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: the reactor pauses accepting (setAccepting(false)).
        events.onAcceptError(-cqe.res);
        break;
    }
  }
  if (accepting_ && !l.armed) armAccept(listener);
}

void IoUringBackend::onRecvCqe(IoEvents& events, uint32_t index, uint32_t generation,
                               const io_uring_cqe& cqe) noexcept {
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  std::string_view bytes;
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    const auto bufferId = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    ++counters_.buffersOut;
    if (cqe.res > 0) {
      bytes =
          std::string_view(buffers_ + size_t{bufferId} * kBufferSize, static_cast<size_t>(cqe.res));
    }
    // Returned to the ring now; the kernel sees it at the batch's advance, after onData copied.
    recycle(bufferId);
  }
  Slot* slot = liveSlot(index, generation);
  if (slot == nullptr) {  // the connection closed; a stale completion
    ++counters_.stale;
    return;
  }
  if (!more) slot->recvArmed = false;
  Connection& c = *slot->connection;

  if (cqe.res > 0) {
    if (slot->discardLate) {
      // Arrived after the drain read what the kernel held: not received in time.
    } else {
      // Delivered even when reading is paused: a multishot recv keeps completing until its cancel
      // lands, and these bytes are in memory already (the ring buffer goes back to the kernel
      // now). Handed over, they count against the connection's high-water mark and
      // --max-buffered; kept aside, they would be memory no limit sees (a connection paused at
      // its mark could hold a megabyte more).
      events.onData(c, bytes);
      slot = liveSlot(index, generation);
      if (slot == nullptr) return;
    }
  } else if (cqe.res == 0) {
    slot->eofSeen = true;
    if (slot->reading && !slot->discardLate) {
      slot->reading = false;
      events.onEof(c);
    } else {
      slot->eofStashed = true;
    }
    return;
  } else {
    switch (-cqe.res) {
      case ECANCELED:  // our pause or removal
        break;
      case ENOBUFS:  // the ring ran dry in this batch; buffers are back once it ends
        ++counters_.ringEmpty;
        break;
      case EINTR:
      case EAGAIN:
        break;
      default:
        slot->eofSeen = true;
        if (slot->reading && !slot->discardLate) {
          slot->reading = false;
          events.onError(c, -cqe.res);
        } else {
          slot->errorStashed = -cqe.res;
        }
        return;
    }
  }
  if (!slot->recvArmed) armRecv(index);
}

void IoUringBackend::handle(IoEvents& events, const io_uring_cqe& cqe) noexcept {
  const uint64_t userData = cqe.user_data;
  switch (opOf(userData)) {
    case Op::kAccept:
      onAcceptCqe(events, indexOf(userData), cqe);
      break;
    case Op::kRecv:
      onRecvCqe(events, indexOf(userData), generationOf(userData), cqe);
      break;
    case Op::kPollOut: {
      Slot* slot = liveSlot(indexOf(userData), generationOf(userData));
      if (slot == nullptr) break;
      slot->pollOutArmed = false;
      if (cqe.res != -ECANCELED) events.onWritable(*slot->connection);
      break;
    }
    case Op::kWake:
      armWake();
      events.onWake();
      break;
    case Op::kCancel:
      break;  // the cancelled request reports itself
  }
}

Result<void> IoUringBackend::poll(IoEvents& events, int timeoutMs) noexcept {
  if (!resumed_.empty()) timeoutMs = 0;  // a stashed EOF or error is ready now
  int r;
  ++batch_;  // everything queued so far goes to the kernel with this enter
  if (timeoutMs == 0) {
    r = io_uring_submit_and_get_events(&ring_);
  } else {
    io_uring_cqe* first = nullptr;
    __kernel_timespec ts{};
    ts.tv_sec = timeoutMs / 1000;
    ts.tv_nsec = static_cast<long long>(timeoutMs % 1000) * 1'000'000;
    r = io_uring_submit_and_wait_timeout(&ring_, &first, 1, timeoutMs < 0 ? nullptr : &ts, nullptr);
  }
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
    spdlog::critical("io_uring_enter: {}; the event loop cannot go on", std::strerror(-r));
    return Error{std::error_code(-r, std::system_category()), "io_uring_enter failed"};
  }
  events.onPolled();

  std::vector<uint32_t> resumed;
  resumed.swap(resumed_);
  for (uint32_t index : resumed) (void)deliverStash(events, index);
  reap(events);
  return {};
}

void IoUringBackend::reap(IoEvents& events) noexcept {
  // Every completion, including any the kernel kept back on CQ overflow, before returning.
  io_uring_cqe* batch[256];
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(&ring_, batch, 256);
    if (n == 0) {
      if (!io_uring_cq_has_overflow(&ring_)) break;
      (void)io_uring_get_events(&ring_);
      continue;
    }
    for (unsigned i = 0; i < n; ++i) handle(events, *batch[i]);
    io_uring_cq_advance(&ring_, n);
    if (recycled_ > 0) {
      io_uring_buf_ring_advance(bufRing_, recycled_);
      counters_.buffersOut -= static_cast<uint64_t>(recycled_);
      recycled_ = 0;
    }
  }
}

void IoUringBackend::wake() noexcept {
  uint64_t one = 1;
  (void)!::write(wakeFd_.get(), &one, sizeof one);
}

}  // namespace reverb
