#include "server/reactor.h"

#include <linux/sockios.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "server/log_limit.h"

namespace reverb {
namespace {

// How long accepting pauses when the process is out of file descriptors. Long enough not to spin,
// short enough that a freed descriptor is used soon (nginx waits 500 ms).
constexpr std::chrono::milliseconds kAcceptBackoff{100};
// How long a closing connection whose peer has not closed keeps discarding input (nginx's
// lingering close) before the final close.
constexpr std::chrono::seconds kLingerTimeout{2};
// Connections accepted from each listener's backlog when a drain starts (the default backlog).
constexpr int kDrainAcceptLimit = 4096;
// Buffer memory freed since the last malloc_trim that makes another one worth its cost (it walks
// every arena, taking some milliseconds per gigabyte).
constexpr uint64_t kTrimAfterBytes = 16 << 20;
// The trim waits until freeing has paused this long (the burst is over) ...
constexpr std::chrono::seconds kTrimQuiet{1};
// ... but no longer than this after the first large free.
constexpr std::chrono::seconds kTrimLatest{5};

// The shortest timeout configured: how often a connection is looked at, at most. 0: none.
int64_t checkPeriod(const Connection::Deadlines& d) noexcept {
  int64_t period = 0;
  for (int64_t t : {d.idleMs, d.requestMs, d.softMs}) {
    if (t > 0 && (period == 0 || t < period)) period = t;
  }
  return period;
}

int64_t toMs(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

#ifdef REVERB_TEST_SEAMS
// Test seam, compiled only into tests/fault's reverbd-test-seams (meson defines the macro for that
// one build of this file): REVERB_FAULT_QUEUE_PUSH_EVERY=N makes every Nth job-queue push (one bulk
// push per poll round) fail as a push that runs out of memory would, at most
// REVERB_FAULT_QUEUE_PUSH_LIMIT times. Loop thread only.
bool pushFails() noexcept {
  static const long every = [] {
    const char* v = std::getenv("REVERB_FAULT_QUEUE_PUSH_EVERY");
    return v != nullptr ? std::atol(v) : 0L;
  }();
  static const long limit = [] {
    const char* v = std::getenv("REVERB_FAULT_QUEUE_PUSH_LIMIT");
    return v != nullptr ? std::atol(v) : -1L;
  }();
  static long pushes = 0;
  static long failures = 0;
  if (every <= 0 || ++pushes % every != 0 || (limit >= 0 && failures >= limit)) return false;
  ++failures;
  return true;
}
#else
constexpr bool pushFails() noexcept {
  return false;
}
#endif

}  // namespace

Reactor::Reactor(std::unique_ptr<IoBackend> backend, std::vector<UniqueFd> listeners,
                 const ProtocolConfig& protocol, JobQueue<ConnectionPtr>& queue, ServerStats& stats,
                 std::chrono::milliseconds drainTimeout, const ReactorLimits& limits)
    : backend_(std::move(backend)),
      listeners_(std::move(listeners)),
      protocol_(protocol),
      queue_(queue),
      producer_(queue.makeProducer()),
      stats_(stats),
      drainTimeout_(drainTimeout),
      limits_(limits),
      checkPeriodMs_(checkPeriod(limits.deadlines)),
      wheel_(steadyMs()),
      polledAt_(Clock::now()),
      nowMs_(toMs(polledAt_)) {}

Reactor::~Reactor() {
  // The loop is over (run() returned, or never ran): whoever destroys the reactor is its last user.
  loopThread().bindToCurrentThread();
  for (auto& [fd, c] : connections_) {
    wheel_.cancel(c->timer());
    c->abort(true);
  }
}

Result<void> Reactor::run() {
  loopThread().bindToCurrentThread();
  for (const UniqueFd& listener : listeners_) {
    if (auto added = backend_->addListener(listener.get()); !added) return added.error();
  }
  updateAccepting();
  while (!draining_ || !connections_.empty()) {
    Clock::time_point now = Clock::now();
    int timeoutMs = nextTimeoutMs(now);
    sleeping_.store(true);
    {
      MutexLock lock(requestsMu_);
      if (!requests_.empty() || (stopRequested_.load() && !draining_)) timeoutMs = 0;
    }
    // The backend has logged why; the loop ends and the server with it (reverbd exits 1).
    if (auto polled = backend_->poll(*this, timeoutMs); !polled) return polled.error();
    dispatchReady();  // the workers start on this round's input while the requests below run
    runRequests();
    if (stopRequested_.load() && !draining_) beginDrain();
    runTimers(polledAt_);
    dispatchReady();
    rounds_.store(rounds_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  return {};
}

void Reactor::stop() noexcept {
  stopRequested_.store(true);
  backend_->wake();
}

void Reactor::post(ConnectionPtr c, ConnectionRequest request) noexcept {
  {
    MutexLock lock(requestsMu_);
    requests_.emplace_back(std::move(c), request);
  }
  if (sleeping_.exchange(false)) backend_->wake();
}

void Reactor::onWake() noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  // Nothing else: the loop runs requests and checks for stop after poll().
}

void Reactor::onPolled() noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  // Awake from here on: a post() during this round's dispatch needs no eventfd write.
  sleeping_.store(false);
  // One clock read per round, shared by every delivery and timer of the round.
  polledAt_ = Clock::now();
  nowMs_ = toMs(polledAt_);
  ++round_;
}

void Reactor::runRequests() noexcept {
  {
    MutexLock lock(requestsMu_);
    running_.swap(requests_);
  }
  for (auto& [c, request] : running_) {
    auto it = connections_.find(c->fd());
    if (it == connections_.end() || it->second != c) continue;  // closed meanwhile
    switch (request) {
      case ConnectionRequest::kClose:
        // The strand recorded why. A client over the output hard limit is closed at once: it
        // does not read, so there is nothing a lingering close could still deliver.
        if (c->settleCloseReason(CloseReason::kEof) == CloseReason::kOutputLimit) {
          if (auto v = deadlineLog_.check(); v.log) {
            spdlog::warn("{}: unsent replies reached --output-hard-limit ({} bytes); closing{}",
                         c->peerName(), protocol_.outputHardLimit, LogLimiter::more(v));
          }
          close(*c, true, CloseReason::kOutputLimit);
        } else {
          finish(*c, CloseReason::kEof);
        }
        break;
      case ConnectionRequest::kWatchWritable:
        backend_->wantWritable(*c);
        break;
      case ConnectionRequest::kResumeReading: {
        const Connection::State s = c->state();
        if (!draining_ && (s == Connection::State::kOpen || s == Connection::State::kReadPaused)) {
          backend_->setReading(*c, true);
        }
        break;
      }
    }
  }
  running_.clear();
}

void Reactor::schedule(Connection& c) noexcept {
  ready_.push_back(c.shared_from_this());
}

void Reactor::dispatchReady() noexcept {
  if (ready_.empty()) return;
  if (pushFails() || !queue_.pushBulk(producer_, ready_.data(), ready_.size())) {
    // Out of memory for the queue: these connections cannot be served. Each is closed from the
    // request list, after this round, like any other close a strand asks for.
    for (ConnectionPtr& c : ready_) {
      spdlog::error("job queue full: dropping {}", c->peerName());
      (void)c->settleCloseReason(CloseReason::kInternal);
      c->abort(true);
      post(std::move(c), ConnectionRequest::kClose);
    }
  }
  ready_.clear();
}

void Reactor::close(Connection& c, bool forced, CloseReason reason) noexcept {
  auto it = connections_.find(c.fd());
  if (it == connections_.end() || it->second.get() != &c) return;
  ConnectionPtr owned = std::move(it->second);
  connections_.erase(it);
  const CloseReason settled = c.settleCloseReason(reason);
  logClosedForCause(c, settled);  // before abort() empties its buffers
  wheel_.cancel(c.timer());
  c.abort(forced);
  // use_count 1: only `owned` is left, so the fd closes when it goes out of scope below.
  backend_->removeConnection(c, owned.use_count() == 1);
  ServerStats::add(stats_.closed, 1);
  ServerStats::add(stats_.closedBy[static_cast<size_t>(settled)], 1);
  owned.reset();  // usually the last reference: the buffers are freed (and counted) here
  updateAccepting();
  noteFreed(polledAt_);
}

void Reactor::finish(Connection& c, CloseReason reason) noexcept {
  (void)c.settleCloseReason(reason);
  const Connection::State state = c.state();
  if (state == Connection::State::kPeerClosed || state == Connection::State::kAborted) {
    // After the peer's FIN nothing unread can be left: the close is a clean FIN. An aborted
    // connection (the queue was full) has had its socket shut down both ways already.
    close(c, false, reason);
    return;
  }
  if (state == Connection::State::kLingering) return;
  int unread = 0;
  int unsent = 0;
  if (::ioctl(c.fd(), FIONREAD, &unread) == 0 && ::ioctl(c.fd(), SIOCOUTQ, &unsent) == 0 &&
      unread == 0 && unsent == 0) {
    // Nothing waits to be read and the peer has acknowledged every reply: a close now is a clean
    // FIN and loses nothing (an idle connection at drain time, typically).
    close(c, false, reason);
    return;
  }
  // The peer may still send. Closing with unread input would make the kernel answer with a reset
  // and drop replies still queued for the peer, so: FIN after the replies, then read and discard
  // until the peer closes too, or the linger deadline (which replaces the connection's deadlines).
  ::shutdown(c.fd(), SHUT_WR);
  wheel_.cancel(c.timer());
  c.startLingering(Clock::now() + kLingerTimeout);
  lingering_.push_back(c.shared_from_this());
  backend_->setReading(c, true);
}

void Reactor::onAccept(UniqueFd fd) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  if (draining_) return;  // closes fd
  if (connections_.size() >= limits_.maxConnections) {
    // memcached's maxconns_fast: accept and close at once, so the client learns now rather than
    // wait in the backlog. A reset (SO_LINGER 0) leaves no TIME_WAIT behind on this side.
    linger reset{1, 0};
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ServerStats::add(stats_.rejected, 1);
    ServerStats::add(stats_.closedBy[static_cast<size_t>(CloseReason::kRejected)], 1);
    if (auto v = rejectedLog_.check(); v.log) {
      spdlog::warn("--max-connections {} reached: closing new connections at once{}",
                   limits_.maxConnections, LogLimiter::more(v));
    }
    return;  // closes fd
  }
  // TCP_NODELAY (and the keepalive settings) are inherited from the listener (see Server).
  const int raw = fd.get();
  auto c = std::make_shared<Connection>(std::move(fd), protocol_, *this, stats_);
  if (!proxyListeners_.empty()) [[unlikely]] {
    if (ProxyMode mode = proxyModeFor(raw); mode != ProxyMode::kOff) c->expectProxyHeader(mode);
  }
  if (auto added = backend_->addConnection(*c); !added) {
    spdlog::warn("dropping new connection: {}", added.error().message());
    return;
  }
  armTimer(*c, INT64_MAX);
  connections_.emplace(raw, std::move(c));
  ServerStats::add(stats_.accepted, 1);
  updateAccepting();
}

void Reactor::requireProxyHeaders(std::vector<ProxyListener> listeners) {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  proxyUniform_.reset();
  bool any = false;
  bool uniform = true;
  for (const ProxyListener& l : listeners) {
    any = any || l.mode != ProxyMode::kOff;
    uniform = uniform && l.mode == listeners.front().mode;
  }
  if (!any) {
    proxyListeners_.clear();
    return;
  }
  if (uniform) proxyUniform_ = listeners.front().mode;
  proxyListeners_ = std::move(listeners);
}

ProxyMode Reactor::proxyModeFor(int fd) const noexcept {
  if (proxyUniform_) return *proxyUniform_;
  auto local = localAddress(fd);
  if (!local) return ProxyMode::kOff;  // the socket is already dead; its first read will say so
  return listenerProxyMode(proxyListeners_, *local);
}

bool Reactor::takeProxyHeader(Connection& c, std::string_view& bytes) noexcept {
  ProxyStage& stage = c.proxyStage();
  const ProxyStage::Step step = stage.feed(bytes);
  switch (step.status) {
    case ProxyStage::Step::Status::kNeedMore:
      return false;
    case ProxyStage::Step::Status::kDone:
      ServerStats::add(stats_.proxyHeaders, 1);
      bytes = step.rest;
      return !bytes.empty();
    case ProxyStage::Step::Status::kInvalid:
      break;
  }
  // Not a header this listener accepts (the spec: abort at once, so the sender notices). A client
  // can cause this at will, so the line is debug-level; the count is in the stats.
  ServerStats::add(stats_.proxyRejected, 1);
  spdlog::debug("{}: no valid PROXY header (--proxy-protocol {}): {}; closing", c.peerName(),
                toString(stage.mode()), step.error);
  // Closed from the request list, as schedule() does: the backend is still inside this call.
  c.abort(true);
  post(c.shared_from_this(), ConnectionRequest::kClose);
  return false;
}

void Reactor::onAcceptError(int error) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  ServerStats::add(stats_.acceptPauses, 1);
  // At the fd limit this repeats every back-off (10 times a second): rate-limited, summarised.
  static LogLimiter limiter;
  if (auto verdict = limiter.check(); verdict.log) {
    spdlog::warn("accept: {}; pausing accepts for {} ms ({} connections open){}",
                 std::strerror(error), kAcceptBackoff.count(), connections_.size(),
                 LogLimiter::more(verdict));
  }
  backend_->setAccepting(false);
  acceptResumeAt_ = Clock::now() + kAcceptBackoff;
  updateAccepting();
}

bool Reactor::overBudget(size_t held) noexcept {
  if (limits_.maxBuffered == 0 || held < kBudgetShare) return false;
  const auto limit = static_cast<int64_t>(limits_.maxBuffered);
  const int64_t own = stats_.buffered.own();
  if (own + othersSeen_ < limit) return false;
  if (summedRound_ != round_) {
    summedRound_ = round_;
    othersSeen_ = stats_.buffered.total() - own;
  }
  return own + othersSeen_ >= limit;
}

void Reactor::onData(Connection& c, std::string_view bytes) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  ServerStats::add(stats_.bytesIn, bytes.size());
  if (c.awaitingProxyHeader()) [[unlikely]] {
    if (!takeProxyHeader(c, bytes)) return;
  }
  // Lingering, deliver() discards the bytes: the connection is closing after its replies.
  Connection::Delivery d = c.deliver(bytes, nowMs_);
  // Close to its high-water mark: read in small steps, so the pause at the mark is exact.
  if (d.held >= protocol_.highWater / 4) backend_->readInSmallSteps(c);
  if (!draining_) {
    if (d.pauseReading) {
      ServerStats::add(stats_.readPauses, 1);
      backend_->setReading(c, false);
    } else if (overBudget(d.held) && c.pauseForBudget(kBudgetShare / 2)) {
      // Every connection together holds more than --max-buffered: this one, among those that
      // hold the most, waits until its strand has sent most of what it holds.
      ServerStats::add(stats_.budgetPauses, 1);
      backend_->setReading(c, false);
      backend_->readInSmallSteps(c);
      if (auto v = budgetLog_.check(); v.log) {
        spdlog::warn(
            "--max-buffered {} reached: reading paused on connections holding {} bytes or more{}",
            limits_.maxBuffered, kBudgetShare, LogLimiter::more(v));
      }
    }
  }
  if (d.schedule) schedule(c);
}

void Reactor::onEof(Connection& c) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  // closeNow also ends a lingering close: the peer has closed too.
  Connection::Delivery d = c.deliverEof(true);
  if (d.closeNow) {
    close(c, false, CloseReason::kEof);
  } else if (d.schedule) {
    schedule(c);
  }
}

void Reactor::onError(Connection& c, int error) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  ServerStats::add(stats_.resets, 1);
  spdlog::debug("{}: {}", c.peerName(), std::strerror(error));
  close(c, true, CloseReason::kReset);
}

void Reactor::onWritable(Connection& c) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  if (c.markWritable()) schedule(c);
}

void Reactor::armTimer(Connection& c, int64_t nextMs) noexcept {
  if (checkPeriodMs_ == 0) return;
  // The next check: one period from now, rounded down to a whole second when the period allows,
  // so that connections checked within the same second share a wake-up.
  int64_t check = nowMs_ + checkPeriodMs_;
  if (checkPeriodMs_ >= 2000) check -= check % 1000;
  wheel_.schedule(c.timer(), std::min(nextMs, check));
}

void Reactor::logClosedForCause(Connection& c, CloseReason reason) noexcept {
  // Protocol errors and socket errors have their own debug line where they are found; eof and
  // drain are not a cause.
  if (reason != CloseReason::kIdle && reason != CloseReason::kRequestTimeout &&
      reason != CloseReason::kOutputLimit && reason != CloseReason::kInternal) {
    return;
  }
  if (!spdlog::should_log(spdlog::level::debug)) return;
  // 2,000 idle connections can reach their timeout in one second: the debug lines are limited
  // too, so that a debug-level log cannot fill the log queue at will.
  const LogLimiter::Verdict v = closedLog_.check();
  if (!v.log) return;
  spdlog::debug("{}: closed: {} ({} bytes received, {} held at the close){}", c.peerName(),
                toString(reason), c.receivedBytes(), c.bufferedBytes(), LogLimiter::more(v));
}

void Reactor::onDeadline(Connection& c) noexcept {
  Connection::Check check = c.checkDeadlines(nowMs_, limits_.deadlines);
  if (!check.close) {
    armTimer(c, check.nextMs);
    if (check.released > 0) noteFreed(polledAt_);
    return;
  }
  const CloseReason reason = *check.close;
  if (reason == CloseReason::kIdle) {
    finish(c, reason);
    return;
  }
  if (auto v = deadlineLog_.check(); v.log) {
    spdlog::warn("{}: {}; closing{}", c.peerName(),
                 reason == CloseReason::kOutputLimit
                     ? "unsent replies stayed above --output-soft-limit too long"
                     : "no progress on a request or its replies within --request-timeout",
                 LogLimiter::more(v));
  }
  // The client is slow or gone: what it did not read is dropped, with a reset if input is unread.
  close(c, true, reason);
}

void Reactor::updateAccepting() noexcept {
  const bool now = !draining_ && !acceptResumeAt_ && connections_.size() < limits_.maxConnections;
  if (now == acceptingNow_) return;
  acceptingNow_ = now;
  accepting_.store(now, std::memory_order_relaxed);
}

void Reactor::noteFreed(Clock::time_point now) noexcept {
  const uint64_t freed = ServerStats::get(stats_.bufferBytesFreed);
  if (trimAt_ || freed - freedAtTrim_ < kTrimAfterBytes) return;
  freedSeen_ = freed;
  trimAt_ = now + kTrimQuiet;
  trimLatest_ = now + kTrimLatest;
}

void Reactor::beginDrain() noexcept {
  // Connections the kernel has already admitted may carry requests too: serve them as well.
  backend_->acceptBacklog(*this, kDrainAcceptLimit);
  draining_ = true;
  updateAccepting();
  backend_->setAccepting(false);
  listeners_.clear();  // refuse new connections now rather than leave them in the backlog
  spdlog::info("draining {} connections (timeout {} ms)", connections_.size(),
               drainTimeout_.count());
  drainDeadline_ = Clock::now() + drainTimeout_;
  std::vector<ConnectionPtr> open;
  open.reserve(connections_.size());
  for (auto& [fd, c] : connections_) open.push_back(c);
  // The drain answers what the kernel has received, but only as much of it as each connection
  // may hold: up to its high-water mark, or kBudgetShare when the server is over --max-buffered.
  // What is left over is not read; the lingering close then discards it.
  const bool overLimit = limits_.maxBuffered != 0 &&
                         stats_.buffered.total() >= static_cast<int64_t>(limits_.maxBuffered);
  const size_t mayHold = overLimit ? kBudgetShare : protocol_.highWater;
  // Stop every receive first. On io_uring, finishReading runs the ring to end one connection's
  // recv, and a connection still receiving meanwhile would take in whatever its client sends, with
  // no mark to stop it (a drain does not pause): 200 slow readers went from 200 to 800 MiB.
  for (ConnectionPtr& c : open) {
    const Connection::State state = c->state();
    if (state != Connection::State::kLingering && state != Connection::State::kPeerClosed) {
      backend_->setReading(*c, false);
    }
  }
  for (ConnectionPtr& c : open) {
    const Connection::State state = c->state();
    if (state == Connection::State::kLingering || state == Connection::State::kPeerClosed) {
      continue;  // already on their way out
    }
    (void)c->settleCloseReason(CloseReason::kDrain);
    // Answer what the kernel has already received, then treat the input as ended. The peer has
    // not closed, so the connection then ends with a lingering close.
    const size_t held = c->bufferedBytes();
    backend_->finishReading(*this, *c, held < mayHold ? mayHold - held : 0);
    Connection::Delivery d = c->deliverEof(false);
    if (d.closeNow) {
      finish(*c, CloseReason::kDrain);
    } else if (d.schedule) {
      schedule(*c);
    }
  }
}

void Reactor::runTimers(Clock::time_point now) noexcept {
  if (acceptResumeAt_ && now >= *acceptResumeAt_) {
    acceptResumeAt_.reset();
    if (!draining_) backend_->setAccepting(true);
    updateAccepting();
  }
  wheel_.advance(toMs(now), [this](TimerWheel::Node& node) {
    onDeadline(*static_cast<Connection*>(node.owner));
  });
  while (!lingering_.empty()) {
    ConnectionPtr c = lingering_.front().lock();
    if (c && c->lingerDeadline() > now) break;
    lingering_.pop_front();
    if (c) close(*c, true, CloseReason::kEof);
  }
  if (drainDeadline_ && now >= *drainDeadline_ && !connections_.empty()) {
    spdlog::warn("drain timeout: force-closing {} connections", connections_.size());
    std::vector<ConnectionPtr> open;
    for (auto& [fd, c] : connections_) open.push_back(c);
    for (ConnectionPtr& c : open) {
      ServerStats::add(stats_.drainForced, 1);
      close(*c, true, CloseReason::kDrain);
    }
  }
  if (trimAt_ && now >= *trimAt_) {
    const uint64_t freed = ServerStats::get(stats_.bufferBytesFreed);
    if (freed != freedSeen_ && now < trimLatest_) {
      freedSeen_ = freed;  // still freeing: the burst is not over
      trimAt_ = now + kTrimQuiet;
    } else {
      // glibc keeps freed memory for reuse, fragmented across its arenas (the workers' ones
      // too); malloc_trim hands the free pages back, so RSS after a burst returns near the
      // baseline.
      const auto start = Clock::now();
      ::malloc_trim(0);
      ServerStats::add(stats_.mallocTrims, 1);
      spdlog::debug(
          "malloc_trim after {} MiB of buffers were freed: {} us", (freed - freedAtTrim_) >> 20,
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
      freedAtTrim_ = freed;
      trimAt_.reset();
    }
  }
}

int Reactor::nextTimeoutMs(Clock::time_point now) const noexcept {
  std::optional<Clock::time_point> next = acceptResumeAt_;
  auto consider = [&](Clock::time_point t) {
    if (!next || t < *next) next = t;
  };
  if (drainDeadline_) consider(*drainDeadline_);
  if (trimAt_) consider(*trimAt_);
  if (std::optional<int64_t> due = wheel_.nextDue()) {
    consider(Clock::time_point(std::chrono::milliseconds(*due)));
  }
  if (!lingering_.empty()) {
    if (ConnectionPtr c = lingering_.front().lock()) {
      consider(c->lingerDeadline());
    } else {
      consider(now);
    }
  }
  if (!next) return -1;
  if (*next <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - now).count();
  return static_cast<int>(std::min<long long>(ms, 60'000));
}

}  // namespace reverb
