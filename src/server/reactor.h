// Reactor: the single event-loop thread. Accepts connections, receives their bytes through the
// I/O backend, hands work to the workers through the job queue, and carries out what the strands
// ask (close, linger, watch writability, resume reading). It also runs the drain on stop().
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
#include "server/stats.h"

namespace reverb {

class Reactor final : public IoEvents, public ConnectionOwner {
 public:
  using Clock = std::chrono::steady_clock;

  Reactor(std::unique_ptr<IoBackend> backend, std::vector<UniqueFd> listeners,
          const ProtocolConfig& protocol, JobQueue<ConnectionPtr>& queue, ServerStats& stats,
          std::chrono::milliseconds drainTimeout);
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
  // peer has closed already.
  void finish(Connection& c) noexcept;
  // Removes c from the table now; `forced` also shuts the socket down (a reset if input is unread).
  void close(Connection& c, bool forced) noexcept;
  void runRequests() noexcept;
  void beginDrain() noexcept;
  void runTimers(Clock::time_point now) noexcept;
  int nextTimeoutMs(Clock::time_point now) const noexcept;

  std::unique_ptr<IoBackend> backend_;
  std::vector<UniqueFd> listeners_;
  const ProtocolConfig& protocol_;
  JobQueue<ConnectionPtr>& queue_;
  JobQueue<ConnectionPtr>::Producer producer_;
  ServerStats& stats_;
  const std::chrono::milliseconds drainTimeout_;

  std::vector<ProxyListener> proxyListeners_;  // empty: no listener requires a PROXY header
  std::optional<ProxyMode> proxyUniform_;        // set when every listener has this one mode

  std::unordered_map<int, ConnectionPtr> connections_;
  std::deque<std::weak_ptr<Connection>> lingering_;  // oldest first; one fixed timeout for all
  std::vector<ConnectionPtr> ready_;                 // this round's jobs, not yet in the queue
  std::optional<Clock::time_point> acceptResumeAt_;
  std::optional<Clock::time_point> drainDeadline_;
  bool draining_ = false;

  // Cross-thread hand-over. `sleeping_` is true while the loop may block in poll(); the first
  // post() that finds it true wakes the backend, later ones do not.
  Mutex requestsMu_;
  std::vector<std::pair<ConnectionPtr, ConnectionRequest>> requests_ REVERB_GUARDED_BY(requestsMu_);
  std::vector<std::pair<ConnectionPtr, ConnectionRequest>> running_;   // loop thread only
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stopRequested_{false};
  std::atomic<uint64_t> rounds_{0};  // written by the loop thread only
};

}  // namespace reverb
