// Worker: one epoll loop per thread of a LoadRun (see worker.h); the loop itself is WorkerLoop.
//
// Hot path of one closed-loop request, per reply: one recv() (edge-triggered, so no epoll_ctl), one
// clock read, one memcmp against the precomputed reply, two histogram increments (the window's
// and the time series interval's), a 17-byte append to the connection's output buffer and one
// send(). No allocation, no virtual or std::function call; a mismatch leaves the hot path through
// an out-of-line function. Once per series interval (1 s) the thread hands its interval to the
// run's IntervalLog under a mutex.
#include "load/worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/hex.h"
#include "base/net.h"

namespace reverb::load {
namespace {

constexpr Nanos kRetryDelay = 10'000'000;     // after an error, before the slot connects again
constexpr Nanos kSweepInterval = 50'000'000;  // timeout checks
constexpr Nanos kPublishInterval = 200'000'000;
constexpr size_t kReadSize = 64 * 1024;
constexpr int kMaxEvents = 256;
constexpr uint64_t kStopTag = UINT64_MAX;

ErrorCause causeOf(int err) noexcept {
  switch (err) {
    case ECONNREFUSED:
      return ErrorCause::kRefused;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
      return ErrorCause::kReset;
    case ETIMEDOUT:
      return ErrorCause::kTimeout;
    case EADDRNOTAVAIL:
    case EADDRINUSE:
      return ErrorCause::kNoPort;
    default:
      return ErrorCause::kOther;
  }
}

}  // namespace

int socketError(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

namespace {

enum class ConnState : uint8_t { kIdle, kConnecting, kOpen };

// One request in flight, oldest first in a per-connection ring.
struct InFlight {
  uint32_t message = 0;
  bool measured = false;  // byCount: issued after the warmup, so it counts towards the quota
  Nanos intended = 0;
  Nanos sent = 0;
};

// Conn: one connection slot. Owns its fd (closed by WorkerLoop::closeConn). Worker thread only.
struct Conn {
  UniqueFd fd;
  uint32_t generation = 0;  // bumped per fd, so events of a closed fd are recognised and ignored
  ConnState state = ConnState::kIdle;
  bool mismatched = false;
  bool inFreeList = false;
  bool measuredCycle = false;  // connect mode, byCount: this connection counts towards the quota
  uint32_t inflight = 0;
  uint32_t head = 0;
  uint32_t nextMessage = 0;
  size_t replyOffset = 0;  // bytes of the oldest in-flight reply already received
  Nanos connectStarted = 0;
  Nanos connectIntended = 0;
  Nanos retryAt = kNever;
  std::unique_ptr<std::string> capture;  // the reply as received, kept only for a printed diff
  Buffer out;
};

// WorkerLoop: the Worker's loop and connections. Worker thread only, except construction.
class WorkerLoop final : public Worker {
 public:
  WorkerLoop(const LoadConfig& config, const MessagePool& pool, const ThreadPlan& plan,
             UniqueFd epollFd, int doneFd, Console& console, IntervalLog& intervals)
      : config_(config),
        pool_(pool),
        plan_(plan),
        doneFd_(doneFd),
        console_(console),
        intervals_(intervals),
        pipeline_(config.mode == Mode::kConnect ? 1u : static_cast<uint32_t>(config.pipeline)),
        connectMode_(config.mode == Mode::kConnect),
        paced_(plan.rate > 0),
        epollFd_(std::move(epollFd)),
        conns_(static_cast<size_t>(plan.slots)),
        ring_(static_cast<size_t>(plan.slots) * pipeline_),
        free_(static_cast<size_t>(plan.slots)),
        readBuffer_(kReadSize) {
    if (paced_) interval_ = 1e9 / plan.rate;
    for (size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].nextMessage = static_cast<uint32_t>((plan.firstSlot + i) * 7919 % pool.size());
    }
    if (config.sourceAddrs > 1) {
      for (int i = 0; i < config.sourceAddrs; ++i) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(0x7f000001u + static_cast<uint32_t>(i));
        sources_.push_back(a);
      }
      nextSource_ = static_cast<size_t>(plan.index) % sources_.size();
    }
  }

  void run(const Timeline& timeline) noexcept override;

 private:
  bool counting(Nanos now) const noexcept { return now >= tl_.measureStart && now < tl_.measureEnd; }
  InFlight& ringAt(const Conn& c, uint32_t i) noexcept {
    return ring_[static_cast<size_t>(&c - conns_.data()) * pipeline_ + i];
  }
  uint32_t slotOf(const Conn& c) const noexcept { return static_cast<uint32_t>(&c - conns_.data()); }

  bool mayIssue(Nanos now, Nanos intended) const noexcept {
    if (stopping_) return false;
    if (tl_.byCount) return intended < tl_.measureStart || measuredIssued_ < plan_.quota;
    return now < tl_.measureEnd;
  }
  bool finished(Nanos now) const noexcept {
    if (tl_.byCount) return measuredIssued_ >= plan_.quota && owed_ == 0;
    return now >= tl_.measureEnd;
  }

  Nanos intendedAt(uint64_t k) const noexcept {
    return tl_.start + plan_.phase + static_cast<Nanos>(std::llround(static_cast<double>(k) * interval_));
  }
  uint64_t dueBy(Nanos now) const noexcept {
    Nanos first = tl_.start + plan_.phase;
    if (now < first) return 0;
    return static_cast<uint64_t>(static_cast<double>(now - first) / interval_) + 1;
  }

  // The share of the series interval that `now` falls in, handing in the previous one first when
  // `now` has passed its end. Only for events inside the window (counting(now) or byCount).
  IntervalShare& shareAt(Nanos now) noexcept {
    if (now >= intervalEnd_) [[unlikely]] {
      rollInterval(now);
    }
    return share_;
  }
  void rollInterval(Nanos now) noexcept;

  void startConnection(Conn& c, Nanos now, Nanos intended) noexcept;
  void onEvent(uint64_t tag, uint32_t events) noexcept;
  void onConnected(Conn& c, Nanos now) noexcept;
  bool readReplies(Conn& c, bool peerClosed) noexcept;
  bool consume(Conn& c, const char* p, size_t n, Nanos now) noexcept;
  bool completeReply(Conn& c, Nanos now) noexcept;
  void issue(Conn& c, Nanos intended, Nanos now) noexcept;
  bool flush(Conn& c) noexcept;
  void nextCycle(Conn& c, Nanos now) noexcept;
  void closeConn(Conn& c, bool reset) noexcept;
  // Forgets the measured requests still in flight on c (it is being closed).
  void releaseOwed(Conn& c) noexcept;
  // Connect mode: c's connection attempt is over (done or failed); settles its quota entry.
  void resolveCycle(Conn& c) noexcept {
    if (c.measuredCycle) {
      --owed_;
      c.measuredCycle = false;
    }
  }
  void fail(Conn& c, ErrorCause cause, int err, const char* what, Nanos now) noexcept;
  void scheduleRetry(Conn& c, Nanos at) noexcept;
  [[gnu::noinline]] void beginMismatch(Conn& c, std::string_view expected) noexcept;
  [[gnu::noinline]] void reportMismatch(Conn& c, const InFlight& f) noexcept;
  [[gnu::noinline]] bool unsolicited(Conn& c, const char* p, size_t n, Nanos now) noexcept;
  void pushFree(Conn& c) noexcept;
  Conn* popFree() noexcept;
  void pump(Nanos now) noexcept;
  void sweep(Nanos now) noexcept;
  void publish() noexcept;
  Nanos nextWake(Nanos now) const noexcept;
  void describe(const Conn& c, const std::string& what) noexcept;

  const LoadConfig& config_;
  const MessagePool& pool_;
  const ThreadPlan plan_;
  Timeline tl_;  // set by run(), before the first request
  const int doneFd_;
  Console& console_;
  IntervalLog& intervals_;
  const uint32_t pipeline_;
  const bool connectMode_;
  const bool paced_;  // open loop (requests mode) or paced connection starts (connect mode)
  double interval_ = 0;

  UniqueFd epollFd_;
  bool stopping_ = false;
  Nanos now_ = 0;
  std::vector<Conn> conns_;
  std::vector<InFlight> ring_;
  std::vector<uint32_t> free_;  // FIFO of slots with room for a request (or idle, connect mode)
  size_t freeHead_ = 0;
  size_t freeCount_ = 0;
  std::vector<char> readBuffer_;
  std::vector<sockaddr_in> sources_;
  size_t nextSource_ = 0;

  uint64_t issued_ = 0;  // paced: schedule entries handed out
  uint64_t measuredIssued_ = 0;
  uint64_t owed_ = 0;  // measured requests (connect mode: connections) not yet resolved
  Nanos lastProgress_ = 0;  // last correct reply or established connection
  Nanos lastError_ = 0;     // last failure of any kind
  Nanos nextSweep_ = 0;
  Nanos nextRetry_ = kNever;
  Nanos nextPublish_ = 0;

  // The series interval this thread is in (see interval_log.h), handed in when it ends.
  size_t intervalIndex_ = 0;
  Nanos intervalEnd_ = kNever;
  IntervalShare share_;
  Histogram intervalLatency_;
};

}  // namespace

Result<std::unique_ptr<Worker>> Worker::create(const LoadConfig& config, const MessagePool& pool,
                                               const ThreadPlan& plan, int stopFd, int doneFd,
                                               Console& console, IntervalLog& intervals) {
  UniqueFd epollFd(epoll_create1(EPOLL_CLOEXEC));
  if (!epollFd.valid()) return errnoError("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kStopTag;
  if (epoll_ctl(epollFd.get(), EPOLL_CTL_ADD, stopFd, &ev) != 0) return errnoError("epoll_ctl(stop fd)");
  return std::unique_ptr<Worker>(std::make_unique<WorkerLoop>(
      config, pool, plan, std::move(epollFd), doneFd, console, intervals));
}

void WorkerLoop::run(const Timeline& timeline) noexcept {
  tl_ = timeline;
  // Paced runs sleep until the next due request; the default 50 us timer slack would blur that.
  (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  std::vector<epoll_event> events(kMaxEvents);
  // Load begins at the timeline's start on every thread. A thread that got going sooner would
  // issue requests before it: outside the window even with no warmup, so a --requests run sent
  // more than it counted, depending on how fast the threads started.
  const timespec start = toTimespec(tl_.start);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &start, nullptr) == EINTR) {
  }
  Nanos now = monotonicNow();
  now_ = now;
  lastProgress_ = now;
  nextSweep_ = now + kSweepInterval;
  nextPublish_ = now + kPublishInterval;
  intervalEnd_ = tl_.measureStart + intervals_.intervalNanos();
  for (Conn& c : conns_) {
    if (connectMode_ && paced_) {
      pushFree(c);
    } else if (!connectMode_ || mayIssue(now, now)) {
      startConnection(c, now, now);
    }
  }
  bool useEpollPwait2 = true;
  while (!failure) {
    now = monotonicNow();
    now_ = now;
    if (stopping_ || finished(now)) break;
    if (tl_.byCount && lastError_ > lastProgress_ && now - lastProgress_ > 2 * config_.timeout.count()) {
      // Only failures for two timeouts: every attempt fails; end instead of waiting forever.
      stalled = true;
      break;
    }
    if (now >= nextPublish_) publish();
    // Hands in an interval that ended while this thread had nothing to record (it wakes at least
    // every sweep interval), so the log can reduce it without waiting for the run's end.
    if (now >= intervalEnd_ && now < tl_.measureEnd) rollInterval(now);
    if (now >= nextSweep_ || now >= nextRetry_) sweep(now);
    if (paced_) pump(now);
    const Nanos wait = nextWake(now) - now;
    int n;
    if (useEpollPwait2) {
      timespec ts = toTimespec(wait);
      n = epoll_pwait2(epollFd_.get(), events.data(), kMaxEvents, &ts, nullptr);
      if (n < 0 && errno == ENOSYS) {
        useEpollPwait2 = false;
        continue;
      }
    } else {
      n = epoll_wait(epollFd_.get(), events.data(), kMaxEvents,
                     static_cast<int>(std::min<Nanos>((wait + 999'999) / 1'000'000, 1000)));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      failure = errnoError("epoll_wait");
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kStopTag) {
        stopping_ = true;
        continue;
      }
      onEvent(events[i].data.u64, events[i].events);
    }
  }
  finishedAt = monotonicNow();
  if (paced_ && !connectMode_) {
    // Entries due in the last millisecond may simply not have been reached before the loop ended.
    Nanos end = std::min(finishedAt, tl_.measureEnd) - 1'000'000;
    uint64_t due = dueBy(end);
    // Only schedule entries due inside the window are owed; warmup ones never count.
    uint64_t firstInWindow = tl_.measureStart <= tl_.start + plan_.phase ? 0 : dueBy(tl_.measureStart - 1);
    uint64_t from = std::max(issued_, firstInWindow);
    backlogAtEnd = due > from ? due - from : 0;
  }
  for (Conn& c : conns_) c.fd.reset();
  if (finishedAt >= tl_.measureStart) {
    intervals_.add(intervalIndex_, share_, &intervalLatency_);
    intervals_.retire(intervalIndex_, true);
  } else {
    intervals_.retire(0, false);  // stopped during the warmup: nothing to hand in
  }
  publish();
  uint64_t one = 1;
  (void)!::write(doneFd_, &one, sizeof one);
}

void WorkerLoop::startConnection(Conn& c, Nanos now, Nanos intended) noexcept {
  const SocketAddress& target = config_.target;
  int fd = ::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  c.generation++;
  c.retryAt = kNever;
  c.connectStarted = now;
  c.connectIntended = intended;
  if (connectMode_) {
    c.measuredCycle = tl_.byCount && intended >= tl_.measureStart;
    if (c.measuredCycle) {
      ++measuredIssued_;
      ++owed_;
    }
  }
  if (fd < 0) {
    int err = errno;
    c.fd.reset();
    fail(c, ErrorCause::kOther, err, "socket", now);
    return;
  }
  c.fd.reset(fd);
  c.state = ConnState::kConnecting;
  if (!sources_.empty()) {
    // The kernel picks the port at connect(), per 4-tuple, instead of at bind() per address.
    int one = 1;
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    const sockaddr_in& source = sources_[nextSource_];
    if (++nextSource_ == sources_.size()) nextSource_ = 0;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0) {
      int err = errno;
      fail(c, causeOf(err), err, "bind", now);
      return;
    }
  }
  if (!connectMode_) setNoDelay(fd);
  if (::connect(fd, target.get(), target.length) != 0 && errno != EINPROGRESS) {
    int err = errno;
    fail(c, causeOf(err), err, "connect", now);
    return;
  }
  epoll_event ev{};
  // Edge-triggered for the socket's whole life: no epoll_ctl(MOD) per request or per connect.
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = (uint64_t{c.generation} << 32) | slotOf(c);
  if (epoll_ctl(epollFd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    int err = errno;
    fail(c, ErrorCause::kOther, err, "epoll_ctl", now);
  }
}

void WorkerLoop::onEvent(uint64_t tag, uint32_t events) noexcept {
  Conn& c = conns_[static_cast<uint32_t>(tag)];
  if (!c.fd.valid() || c.generation != static_cast<uint32_t>(tag >> 32)) return;
  if (c.state == ConnState::kConnecting) {
    Nanos now = monotonicNow();
    now_ = now;
    if (events & (EPOLLERR | EPOLLHUP)) {
      int err = socketError(c.fd.get());
      fail(c, err ? causeOf(err) : ErrorCause::kReset, err, "connect", now);
      return;
    }
    if (!(events & EPOLLOUT)) return;
    onConnected(c, now);
    if (c.state != ConnState::kOpen) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
    if (!readReplies(c, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)) return;
  }
  if ((events & EPOLLOUT) && !c.out.empty()) flush(c);
}

void WorkerLoop::onConnected(Conn& c, Nanos now) noexcept {
  c.state = ConnState::kOpen;
  ++counters.connectionsAll;
  bool count = connectMode_ && tl_.byCount ? c.measuredCycle : counting(now);
  if (count) {
    ++counters.connections;
    histograms.connectLatency.record(static_cast<uint64_t>(now - c.connectIntended));
    if (c.connectIntended != c.connectStarted) {
      histograms.connectLatencyUncorrected.record(static_cast<uint64_t>(now - c.connectStarted));
    }
  }
  if (connectMode_) {
    issue(c, now, now);
  } else if (paced_) {
    pushFree(c);
    return;
  } else {
    for (uint32_t i = 0; i < pipeline_ && mayIssue(now, now); ++i) issue(c, now, now);
  }
  flush(c);
}

bool WorkerLoop::readReplies(Conn& c, bool peerClosed) noexcept {
  for (;;) {
    ssize_t n = ::recv(c.fd.get(), readBuffer_.data(), kReadSize, 0);
    if (n > 0) {
      Nanos now = monotonicNow();
      now_ = now;
      if (counting(now)) counters.bytesReceived += static_cast<uint64_t>(n);
      if (!consume(c, readBuffer_.data(), static_cast<size_t>(n), now)) return false;
      // A short read drained the socket, and data arriving after it raises a new edge. A FIN
      // that came before this read raises none, so then read on until recv() reports it.
      if (static_cast<size_t>(n) < kReadSize && !peerClosed) break;
      continue;
    }
    if (n == 0) {
      fail(c, ErrorCause::kEarlyEof, 0, "recv", now_);
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    int err = errno;
    fail(c, causeOf(err), err, "recv", now_);
    return false;
  }
  return flush(c);
}

bool WorkerLoop::consume(Conn& c, const char* p, size_t n, Nanos now) noexcept {
  while (n > 0) {
    if (c.inflight == 0) return unsolicited(c, p, n, now);
    const InFlight& f = ringAt(c, c.head);
    const std::string_view expected = pool_.reply(f.message);
    const size_t take = std::min(n, expected.size() - c.replyOffset);
    if (!c.mismatched) [[likely]] {
      if (std::memcmp(p, expected.data() + c.replyOffset, take) != 0) beginMismatch(c, expected);
    }
    if (c.capture) [[unlikely]] c.capture->append(p, take);
    c.replyOffset += take;
    p += take;
    n -= take;
    if (c.replyOffset == expected.size() && !completeReply(c, now)) return false;
  }
  return true;
}

bool WorkerLoop::completeReply(Conn& c, Nanos now) noexcept {
  const InFlight f = ringAt(c, c.head);
  if (++c.head == pipeline_) c.head = 0;
  --c.inflight;
  c.replyOffset = 0;
  if (f.measured) --owed_;
  if (c.mismatched) [[unlikely]] {
    ++counters.mismatches;
    if (counting(now)) ++shareAt(now).mismatches;
    reportMismatch(c, f);
    resolveCycle(c);
    releaseOwed(c);
    closeConn(c, false);
    // Framing may be lost after a wrong reply: replace the connection at once.
    if (connectMode_) {
      nextCycle(c, now);
    } else {
      startConnection(c, now, now);
    }
    return false;
  }
  lastProgress_ = now;
  ++counters.completedAll;
  const bool count = tl_.byCount ? (connectMode_ ? c.measuredCycle : f.measured) : counting(now);
  if (count) {
    ++counters.requests;
    ++shareAt(now).requests;
    if (paced_ && !connectMode_) {
      const auto latency = static_cast<uint64_t>(now - f.intended);
      histograms.latency.record(latency);
      intervalLatency_.record(latency);
      histograms.latencyUncorrected.record(static_cast<uint64_t>(now - f.sent));
    } else {
      const auto latency = static_cast<uint64_t>(now - f.sent);
      histograms.latency.record(latency);
      intervalLatency_.record(latency);
    }
  }
  if (connectMode_) {
    resolveCycle(c);
    closeConn(c, config_.close == CloseMode::kRst);
    nextCycle(c, now);
    return false;
  }
  if (paced_) {
    pushFree(c);
  } else if (mayIssue(now, now)) {
    issue(c, now, now);
  }
  return true;
}

void WorkerLoop::issue(Conn& c, Nanos intended, Nanos now) noexcept {
  uint32_t pos = c.head + c.inflight;
  if (pos >= pipeline_) pos -= pipeline_;
  InFlight& f = ringAt(c, pos);
  f.message = c.nextMessage;
  if (++c.nextMessage == pool_.size()) c.nextMessage = 0;
  f.intended = intended;
  f.sent = now;
  f.measured = !connectMode_ && tl_.byCount && intended >= tl_.measureStart;
  if (f.measured) {
    ++measuredIssued_;
    ++owed_;
  }
  ++c.inflight;
  c.out.append(pool_.request(f.message));
}

bool WorkerLoop::flush(Conn& c) noexcept {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.consume(static_cast<size_t>(n));
      if (counting(now_)) counters.bytesSent += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // EPOLLOUT edge follows
    int err = errno;
    fail(c, causeOf(err), err, "send", now_);
    return false;
  }
  return true;
}

void WorkerLoop::nextCycle(Conn& c, Nanos now) noexcept {
  if (paced_) {
    pushFree(c);
  } else if (mayIssue(now, now)) {
    startConnection(c, now, now);
  }
}

void WorkerLoop::closeConn(Conn& c, bool reset) noexcept {
  if (c.fd.valid() && reset) {
    linger lin{1, 0};  // close() sends RST and skips TIME_WAIT
    (void)setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  }
  c.fd.reset();  // closing also removes it from the epoll set: the fd is never duplicated
  c.state = ConnState::kIdle;
  c.inflight = 0;
  c.head = 0;
  c.replyOffset = 0;
  c.mismatched = false;
  c.capture.reset();
  c.out.clear();
}

void WorkerLoop::releaseOwed(Conn& c) noexcept {
  for (uint32_t i = 0; i < c.inflight; ++i) {
    uint32_t pos = c.head + i;
    if (pos >= pipeline_) pos -= pipeline_;
    if (ringAt(c, pos).measured) --owed_;
  }
}

void WorkerLoop::fail(Conn& c, ErrorCause cause, int err, const char* what, Nanos now) noexcept {
  ++counters.errors[static_cast<size_t>(cause)];
  if (counting(now)) ++shareAt(now).errors;
  lastError_ = now;
  if (console_.errorLinesLeft.fetch_sub(1, std::memory_order_relaxed) > 0) {
    std::string line = std::string(toString(cause)) + ": " + what;
    if (err) line += std::string(": ") + std::strerror(err);
    if (c.inflight > 0) {
      line += " (" + std::to_string(c.inflight) + " repl" + (c.inflight == 1 ? "y" : "ies") + " owed, " +
              std::to_string(c.replyOffset) + " of " +
              std::to_string(pool_.reply(ringAt(c, c.head).message).size()) + " bytes of the first received)";
    } else if (cause == ErrorCause::kEarlyEof) {
      line += " (the server closed a connection that owed no reply)";
    }
    describe(c, line);
  } else {
    console_.errorsElided.store(true, std::memory_order_relaxed);
  }
  releaseOwed(c);
  resolveCycle(c);
  closeConn(c, false);
  scheduleRetry(c, now + kRetryDelay);
}

void WorkerLoop::scheduleRetry(Conn& c, Nanos at) noexcept {
  c.retryAt = at;
  nextRetry_ = std::min(nextRetry_, at);
}

void WorkerLoop::describe(const Conn& c, const std::string& what) noexcept {
  MutexLock lock(console_.mutex);
  std::fprintf(stderr, "reverb-load: connection %d (thread %d): %s\n",
               plan_.firstSlot + static_cast<int>(slotOf(c)), plan_.index, what.c_str());
}

void WorkerLoop::beginMismatch(Conn& c, std::string_view expected) noexcept {
  c.mismatched = true;
  if (console_.diffsLeft.fetch_sub(1, std::memory_order_relaxed) > 0) {
    // Everything before this read matched, so the bytes received so far equal the expected prefix.
    c.capture = std::make_unique<std::string>(expected.substr(0, c.replyOffset));
  }
}

void WorkerLoop::reportMismatch(Conn& c, const InFlight& f) noexcept {
  if (!c.capture) return;
  std::string_view expected = pool_.reply(f.message);
  std::string_view payload = pool_.payload(f.message);
  std::string text = "mismatch: reply to a " + std::to_string(payload.size()) + "-byte payload [" +
                     hexPreview(payload, 24) + "] differs from the expected " +
                     std::to_string(expected.size()) + "-byte reply at byte " +
                     std::to_string(firstDifference(expected, *c.capture)) + "\n" +
                     formatHexDiff(expected, *c.capture);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  describe(c, text);
  c.capture.reset();
}

bool WorkerLoop::unsolicited(Conn& c, const char* p, size_t n, Nanos now) noexcept {
  ++counters.mismatches;
  if (counting(now)) ++shareAt(now).mismatches;
  if (console_.diffsLeft.fetch_sub(1, std::memory_order_relaxed) > 0) {
    describe(c, "mismatch: " + std::to_string(n) + " bytes arrived with no request in flight [" +
                    hexPreview(std::string_view(p, n), 24) + "]");
  }
  resolveCycle(c);
  releaseOwed(c);
  closeConn(c, false);
  if (connectMode_) {
    nextCycle(c, now);
  } else {
    startConnection(c, now, now);
  }
  return false;
}

void WorkerLoop::rollInterval(Nanos now) noexcept {
  const Nanos length = intervals_.intervalNanos();
  const auto next = static_cast<size_t>((now - tl_.measureStart) / length);
  intervals_.add(intervalIndex_, share_, &intervalLatency_);
  // Intervals this thread slept through get an empty share, so none waits for it.
  for (size_t i = intervalIndex_ + 1; i < next; ++i) intervals_.add(i, IntervalShare{}, nullptr);
  share_ = IntervalShare{};
  intervalLatency_.reset();
  intervalIndex_ = next;
  intervalEnd_ = tl_.measureStart + static_cast<Nanos>(next + 1) * length;
}

void WorkerLoop::pushFree(Conn& c) noexcept {
  if (c.inFreeList) return;
  c.inFreeList = true;
  size_t tail = freeHead_ + freeCount_;
  if (tail >= free_.size()) tail -= free_.size();
  free_[tail] = slotOf(c);
  ++freeCount_;
}

Conn* WorkerLoop::popFree() noexcept {
  while (freeCount_ > 0) {
    Conn& c = conns_[free_[freeHead_]];
    if (++freeHead_ == free_.size()) freeHead_ = 0;
    --freeCount_;
    c.inFreeList = false;
    // Entries go stale when their connection failed or filled up since; those are dropped.
    bool usable = connectMode_ ? (c.state == ConnState::kIdle && !c.fd.valid() && c.retryAt == kNever)
                               : (c.state == ConnState::kOpen && c.inflight < pipeline_);
    if (usable) return &c;
  }
  return nullptr;
}

void WorkerLoop::pump(Nanos now) noexcept {
  const uint64_t due = dueBy(now);
  while (issued_ < due) {
    const Nanos intended = intendedAt(issued_);
    if (!mayIssue(now, intended)) break;
    Conn* c = popFree();
    if (c == nullptr) break;
    ++issued_;
    if (connectMode_) {
      startConnection(*c, now, intended);
      continue;
    }
    if (counting(now)) histograms.sendDelay.record(static_cast<uint64_t>(now - intended));
    issue(*c, intended, now);
    if (flush(*c) && c->inflight < pipeline_) pushFree(*c);
  }
}

void WorkerLoop::sweep(Nanos now) noexcept {
  nextSweep_ = now + kSweepInterval;
  nextRetry_ = kNever;
  const Nanos timeout = config_.timeout.count();
  for (Conn& c : conns_) {
    switch (c.state) {
      case ConnState::kConnecting:
        if (now - c.connectStarted > timeout) fail(c, ErrorCause::kTimeout, 0, "connect", now);
        break;
      case ConnState::kOpen:
        if (c.inflight > 0 && now - ringAt(c, c.head).sent > timeout) {
          fail(c, ErrorCause::kTimeout, 0, "no complete reply", now);
        }
        break;
      case ConnState::kIdle:
        break;
    }
    if (c.state == ConnState::kIdle && c.retryAt != kNever) {
      if (c.retryAt <= now) {
        c.retryAt = kNever;
        if (connectMode_) {
          nextCycle(c, now);
        } else if (mayIssue(now, now)) {
          startConnection(c, now, now);
        }
      } else {
        nextRetry_ = std::min(nextRetry_, c.retryAt);
      }
    }
  }
}

void WorkerLoop::publish() noexcept {
  nextPublish_ = now_ + kPublishInterval;
  MutexLock lock(publishMutex_);
  publishedCounters_ = counters;
  publishedLatency_ = histograms.latency;  // same layout: copies into the existing allocation
}

Nanos WorkerLoop::nextWake(Nanos now) const noexcept {
  Nanos wake = std::min({nextSweep_, nextRetry_, nextPublish_});
  if (!tl_.byCount) wake = std::min(wake, tl_.measureEnd);
  if (paced_ && freeCount_ > 0) wake = std::min(wake, intendedAt(issued_));
  return std::max(wake, now);
}

}  // namespace reverb::load
