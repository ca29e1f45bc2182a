// Reactor: the single event-loop thread. Accepts connections, receives their bytes through the
// I/O backend, hands work to the workers through the job queue, and carries out what the strands
// ask (close, linger, watch writability, resume reading). It also runs the drain on stop(), and
// enforces the limits: --max-connections at accept, --max-buffered when it receives, and each
// connection's deadlines (idle, request, output soft limit) on a TimerWheel.
//
// Deadlines cost nothing per request. The strand and deliver() only note times in the
// connection as things happen (under the lock they hold anyway); the reactor looks at a
// connection when its timer fires, closes it if a deadline has passed, and otherwise schedules
// the timer again for the earliest running deadline, but never later than one check period
// (the shortest timeout configured) from now, rounded down to a whole second when that period is
// 2 s or more so that the checks of many connections share one wake-up. A deadline that a strand
// starts (after the last check) is at least one check period away, so the timer is never late:
// it fires at most one check period early, finds nothing due, and waits again.
//
// Ownership: owns the backend, the listening sockets and the table of connections; borrows the
// queue, the protocol config and the stats, which must outlive it.
// Threading: loop thread only (the thread that calls run()), except stop() and post(), which are
// thread-safe. run() records its thread as the loop thread (ConnectionOwner::loopThread()), and
// every IoEvents callback checks it where NDEBUG is not defined.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/mutex.h"
#include "server/connection.h"
#include "server/io_backend.h"
#include "server/job_queue.h"
#include "server/log_limit.h"
#include "server/stats.h"
#include "server/timer_wheel.h"

namespace reverb {

// What the reactor enforces; see ServerLimits in server.h for the flags behind each.
struct ReactorLimits {
  size_t maxConnections = SIZE_MAX;  // past it, a new connection is closed at once (a reset)
  Connection::Deadlines deadlines;   // idle, request and output soft-limit times (ms; 0: off)
  size_t maxBuffered = 0;            // bytes in every connection's buffers together; 0: off
};

class Reactor final : public IoEvents, public ConnectionOwner {
 public:
  using Clock = std::chrono::steady_clock;

  Reactor(std::unique_ptr<IoBackend> backend, std::vector<UniqueFd> listeners,
          const ProtocolConfig& protocol, JobQueue<ConnectionPtr>& queue, ServerStats& stats,
          std::chrono::milliseconds drainTimeout, const ReactorLimits& limits = {});
  ~Reactor();

  std::string_view backendName() const noexcept { return backend_->name(); }

  // Runs the loop until stop() was called and every connection is closed (or force-closed at the
  // drain timeout). Returns an error if a listener cannot be watched at start, or if the backend
  // meets an error that leaves the loop unable to go on (see IoBackend::poll); connections still
  // open are then abandoned to the destructor.
  Result<void> run();

  // Thread-safe: stop accepting, answer what was received, close, return from run().
  void stop() noexcept;

  // Thread-safe (ConnectionOwner): a strand's request, carried out on the loop thread.
  void post(ConnectionPtr c, ConnectionRequest request) noexcept override
      REVERB_EXCLUDES(requestsMu_);

  // Thread-safe: loop rounds completed so far (each poll() and what follows it). A watchdog that
  // wakes the loop with nudge() and sees this move knows the loop is alive.
  uint64_t rounds() const noexcept { return rounds_.load(std::memory_order_relaxed); }
  // Thread-safe: makes the loop run one round (and return to waiting) without asking anything.
  void nudge() noexcept { backend_->wake(); }
  // Thread-safe: stop() has been called (the drain has begun, or is about to).
  bool stopping() const noexcept { return stopRequested_.load(std::memory_order_relaxed); }
  // Before run(), on the thread that built the reactor: which listeners require a PROXY protocol
  // header (an empty list, or every mode kOff: none). When all listeners share one mode it is
  // applied without a look-up; otherwise each accepted connection costs one getsockname() to find
  // its listener (a cost per connection, never per request).
  void requireProxyHeaders(std::vector<ProxyListener> listeners);

  // Thread-safe: whether a new connection would be served now. True from construction (the
  // listeners are bound, so the kernel queues a new connection until run() accepts it: a
  // readiness probe asked between the ready line and run() must not see 503); false once stop()
  // is called, during an accept pause (out of fds), and while --max-connections connections are
  // open. A relaxed read of a flag the loop keeps up to date.
  bool accepting() const noexcept {
    return accepting_.load(std::memory_order_relaxed) &&
           !stopRequested_.load(std::memory_order_relaxed);
  }

  // Below this many bytes a connection is never paused for --max-buffered: a client with small
  // requests keeps being served whatever the others hold. Paused ones resume below half of it.
  static constexpr size_t kBudgetShare = 16 * 1024;

  // Loop thread only: the number of open connections.
  size_t connectionCount() const noexcept {
    REVERB_ASSERT_LOOP_THREAD(loopThread());
    return connections_.size();
  }

 private:
  // IoEvents.
  void onAccept(UniqueFd fd) noexcept override;
  void onAcceptError(int error) noexcept override;
  void onData(Connection& c, std::string_view bytes) noexcept override;
  void onEof(Connection& c) noexcept override;
  void onError(Connection& c, int error) noexcept override;
  void onWritable(Connection& c) noexcept override;
  void onWake() noexcept override;
  void onPolled() noexcept override;

  // Queues c's strand for the pool. The jobs of one poll round are collected in ready_ and handed
  // over together by dispatchReady(): one queue operation and at most one wake-up per sleeping
  // worker per round, instead of one per connection (docs/BENCHMARKS.md, "The hand-off").
  void schedule(Connection& c) noexcept;
  void dispatchReady() noexcept;
  // The PROXY pre-stage: hands c's bytes to its ProxyStage while the header is awaited. Returns
  // true, with `bytes` narrowed to what followed the header, when there is input for the strand;
  // false when the bytes were all header (or c is being closed for a bad one).
  bool takeProxyHeader(Connection& c, std::string_view& bytes) noexcept;
  ProxyMode proxyModeFor(int fd) const noexcept;
  // Ends a connection whose replies are all in the kernel: a FIN, and a lingering close unless the
  // peer has closed already. `reason` is recorded unless the connection has one already.
  void finish(Connection& c, CloseReason reason) noexcept;
  // Removes c from the table now; `forced` also shuts the socket down (a reset if input is unread).
  // Counts the close under the connection's recorded reason, or `reason` if it has none.
  void close(Connection& c, bool forced, CloseReason reason) noexcept;
  void runRequests() noexcept;
  void beginDrain() noexcept;
  void runTimers(Clock::time_point now) noexcept;
  int nextTimeoutMs(Clock::time_point now) const noexcept;

  // The connection's timer fired: close it if a deadline passed, else schedule it again.
  void onDeadline(Connection& c) noexcept;
  // The one debug line (rate-limited) of a connection closed for a limit: peer, cause, counters.
  void logClosedForCause(Connection& c, CloseReason reason) noexcept;
  // Schedules c's timer for `nextMs` (a deadline), or for the next check if that comes first.
  void armTimer(Connection& c, int64_t nextMs) noexcept;
  // True when a connection holding `held` bytes must stop reading for --max-buffered.
  bool overBudget(size_t held) noexcept;
  // Keeps accepting_ in step with the loop's state; cheap enough for every accept and close.
  void updateAccepting() noexcept;
  // Plans a malloc_trim once enough buffer memory has been freed (after a burst).
  void noteFreed(Clock::time_point now) noexcept;

  std::unique_ptr<IoBackend> backend_;
  std::vector<UniqueFd> listeners_;
  const ProtocolConfig& protocol_;
  JobQueue<ConnectionPtr>& queue_;
  JobQueue<ConnectionPtr>::Producer producer_;
  ServerStats& stats_;
  const std::chrono::milliseconds drainTimeout_;

  std::vector<ProxyListener> proxyListeners_;  // empty: no listener requires a PROXY header
  std::optional<ProxyMode> proxyUniform_;      // set when every listener has this one mode
  const ReactorLimits limits_;
  // How often, at most, a connection with deadlines is looked at; 0: no deadlines configured.
  const int64_t checkPeriodMs_;

  std::unordered_map<int, ConnectionPtr> connections_;
  std::deque<std::weak_ptr<Connection>> lingering_;  // oldest first; one fixed timeout for all
  std::vector<ConnectionPtr> ready_;                 // this round's jobs, not yet in the queue
  std::optional<Clock::time_point> acceptResumeAt_;
  std::optional<Clock::time_point> drainDeadline_;
  bool draining_ = false;

  // The deadlines of every connection, and the time of the current round (set by onPolled, so
  // every delivery of one round shares one clock read).
  TimerWheel wheel_;
  Clock::time_point polledAt_;
  int64_t nowMs_ = 0;
  uint64_t round_ = 0;

  // --max-buffered. The reactor is the only thread that adds to ServerStats::buffered (other
  // threads only take away), so its own shard plus what the others held at the last look is an
  // upper bound of the total; the shards are summed again, at most once per round, only when that
  // bound reaches the limit.
  int64_t othersSeen_ = 0;
  uint64_t summedRound_ = UINT64_MAX;

  // After a burst: malloc_trim once freeing has stopped for a second (or 5 s after it began).
  uint64_t freedAtTrim_ = 0;
  uint64_t freedSeen_ = 0;
  std::optional<Clock::time_point> trimAt_;
  Clock::time_point trimLatest_;

  // accepting(): the flag, and the loop's own copy (to store only on a change).
  std::atomic<bool> accepting_{true};
  bool acceptingNow_ = true;

  // At most one warning per kind per 10 s, with the count of those held back.
  // Rate limits of the limits' warnings (a client can trigger them at will).
  LogLimiter rejectedLog_;
  LogLimiter budgetLog_;
  LogLimiter deadlineLog_;
  LogLimiter closedLog_{std::chrono::seconds(10), 50};  // the debug line of logClosedForCause

  // Cross-thread hand-over. `sleeping_` is true while the loop may block in poll(); the first
  // post() that finds it true wakes the backend, later ones do not.
  Mutex requestsMu_;
  std::vector<std::pair<ConnectionPtr, ConnectionRequest>> requests_ REVERB_GUARDED_BY(requestsMu_);
  std::vector<std::pair<ConnectionPtr, ConnectionRequest>> running_;  // loop thread only
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stopRequested_{false};
  std::atomic<uint64_t> rounds_{0};  // written by the loop thread only
};

}  // namespace reverb
