#include "server/reactor.h"

#include <linux/sockios.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

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
                 std::chrono::milliseconds drainTimeout)
    : backend_(std::move(backend)),
      listeners_(std::move(listeners)),
      protocol_(protocol),
      queue_(queue),
      producer_(queue.makeProducer()),
      stats_(stats),
      drainTimeout_(drainTimeout) {}

Reactor::~Reactor() {
  // The loop is over (run() returned, or never ran): whoever destroys the reactor is its last user.
  loopThread().bindToCurrentThread();
  for (auto& [fd, c] : connections_) c->abort(true);
}

Result<void> Reactor::run() {
  loopThread().bindToCurrentThread();
  for (const UniqueFd& listener : listeners_) {
    if (auto added = backend_->addListener(listener.get()); !added) return added.error();
  }
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
    runTimers(Clock::now());
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
        finish(*c);
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
      c->abort(true);
      post(std::move(c), ConnectionRequest::kClose);
    }
  }
  ready_.clear();
}

void Reactor::close(Connection& c, bool forced) noexcept {
  auto it = connections_.find(c.fd());
  if (it == connections_.end() || it->second.get() != &c) return;
  ConnectionPtr owned = std::move(it->second);
  connections_.erase(it);
  c.abort(forced);
  // use_count 1: only `owned` is left, so the fd closes when it goes out of scope below.
  backend_->removeConnection(c, owned.use_count() == 1);
  ServerStats::add(stats_.closed, 1);
}

void Reactor::finish(Connection& c) noexcept {
  const Connection::State state = c.state();
  if (state == Connection::State::kPeerClosed || state == Connection::State::kAborted) {
    // After the peer's FIN nothing unread can be left: the close is a clean FIN. An aborted
    // connection (the queue was full) has had its socket shut down both ways already.
    close(c, false);
    return;
  }
  if (state == Connection::State::kLingering) return;
  int unread = 0;
  int unsent = 0;
  if (::ioctl(c.fd(), FIONREAD, &unread) == 0 && ::ioctl(c.fd(), SIOCOUTQ, &unsent) == 0 &&
      unread == 0 && unsent == 0) {
    // Nothing waits to be read and the peer has acknowledged every reply: a close now is a clean
    // FIN and loses nothing (an idle connection at drain time, typically).
    close(c, false);
    return;
  }
  // The peer may still send. Closing with unread input would make the kernel answer with a reset
  // and drop replies still queued for the peer, so: FIN after the replies, then read and discard
  // until the peer closes too, or the linger deadline.
  ::shutdown(c.fd(), SHUT_WR);
  c.startLingering(Clock::now() + kLingerTimeout);
  lingering_.push_back(c.shared_from_this());
  backend_->setReading(c, true);
}

void Reactor::onAccept(UniqueFd fd) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  if (draining_) return;  // closes fd
  // TCP_NODELAY is inherited from the listener (see listenOn).
  const int raw = fd.get();
  auto c = std::make_shared<Connection>(std::move(fd), protocol_, *this, stats_);
  if (!proxyListeners_.empty()) [[unlikely]] {
    if (ProxyMode mode = proxyModeFor(raw); mode != ProxyMode::kOff) c->expectProxyHeader(mode);
  }
  if (auto added = backend_->addConnection(*c); !added) {
    spdlog::warn("dropping new connection: {}", added.error().message());
    return;
  }
  connections_.emplace(raw, std::move(c));
  ServerStats::add(stats_.accepted, 1);
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
}

void Reactor::onData(Connection& c, std::string_view bytes) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  ServerStats::add(stats_.bytesIn, bytes.size());
  if (c.awaitingProxyHeader()) [[unlikely]] {
    if (!takeProxyHeader(c, bytes)) return;
  }
  // Lingering, deliver() discards the bytes: the connection is closing after its replies.
  Connection::Delivery d = c.deliver(bytes);
  if (d.pauseReading && !draining_) {
    ServerStats::add(stats_.readPauses, 1);
    backend_->setReading(c, false);
  }
  if (d.schedule) schedule(c);
}

void Reactor::onEof(Connection& c) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  // closeNow also ends a lingering close: the peer has closed too.
  Connection::Delivery d = c.deliverEof(true);
  if (d.closeNow) {
    close(c, false);
  } else if (d.schedule) {
    schedule(c);
  }
}

void Reactor::onError(Connection& c, int error) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  ServerStats::add(stats_.resets, 1);
  spdlog::debug("{}: {}", c.peerName(), std::strerror(error));
  close(c, true);
}

void Reactor::onWritable(Connection& c) noexcept {
  REVERB_ASSERT_LOOP_THREAD(loopThread());
  if (c.markWritable()) schedule(c);
}

void Reactor::beginDrain() noexcept {
  // Connections the kernel has already admitted may carry requests too: serve them as well.
  backend_->acceptBacklog(*this, kDrainAcceptLimit);
  draining_ = true;
  backend_->setAccepting(false);
  listeners_.clear();  // refuse new connections now rather than leave them in the backlog
  spdlog::info("draining {} connections (timeout {} ms)", connections_.size(),
               drainTimeout_.count());
  drainDeadline_ = Clock::now() + drainTimeout_;
  std::vector<ConnectionPtr> open;
  open.reserve(connections_.size());
  for (auto& [fd, c] : connections_) open.push_back(c);
  for (ConnectionPtr& c : open) {
    const Connection::State state = c->state();
    if (state == Connection::State::kLingering || state == Connection::State::kPeerClosed) {
      continue;  // already on their way out
    }
    // Answer what the kernel has already received, then treat the input as ended. The peer has
    // not closed, so the connection then ends with a lingering close.
    backend_->finishReading(*this, *c);
    Connection::Delivery d = c->deliverEof(false);
    if (d.closeNow) {
      finish(*c);
    } else if (d.schedule) {
      schedule(*c);
    }
  }
}

void Reactor::runTimers(Clock::time_point now) noexcept {
  if (acceptResumeAt_ && now >= *acceptResumeAt_) {
    acceptResumeAt_.reset();
    if (!draining_) backend_->setAccepting(true);
  }
  while (!lingering_.empty()) {
    ConnectionPtr c = lingering_.front().lock();
    if (c && c->lingerDeadline() > now) break;
    lingering_.pop_front();
    if (c) close(*c, true);
  }
  if (drainDeadline_ && now >= *drainDeadline_ && !connections_.empty()) {
    spdlog::warn("drain timeout: force-closing {} connections", connections_.size());
    std::vector<ConnectionPtr> open;
    for (auto& [fd, c] : connections_) open.push_back(c);
    for (ConnectionPtr& c : open) {
      ServerStats::add(stats_.drainForced, 1);
      close(*c, true);
    }
  }
}

int Reactor::nextTimeoutMs(Clock::time_point now) const noexcept {
  std::optional<Clock::time_point> next = acceptResumeAt_;
  auto consider = [&](Clock::time_point t) {
    if (!next || t < *next) next = t;
  };
  if (drainDeadline_) consider(*drainDeadline_);
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
