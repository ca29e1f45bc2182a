// WorkerPool: a fixed set of threads that run connection strands taken from the job queue.
// A worker takes up to four jobs at a time. With send rings, it parses all of them and then hands
// their replies to the kernel with one io_uring_enter (SendRing); without, each strand sends its
// own replies with send(2).
// Ownership: owns its threads, their send rings and one WorkerStats per worker; borrows the queue,
// which must outlive the pool.
// Threading: construct and stop() from one thread; the workers touch only the queue, the
// connections they pop and their own WorkerStats; workerStats() is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

#include "server/connection.h"
#include "server/job_queue.h"
#include "server/send_ring.h"
#include "server/stats.h"

namespace reverb {

// The scheduling policy each worker sets for itself (--worker-policy).
// kBatch: SCHED_BATCH. The kernel then does not let a woken worker preempt the thread running on
// its CPU (the reactor, or a load generator on a small machine); it runs when that thread blocks or
// its slice ends. On 2 cores that turns most hand-offs from a context switch into a queued job a
// running worker finds: docs/BENCHMARKS.md, "Workers as SCHED_BATCH". Needs no privilege; nice
// still applies. A worker whose thread is not SCHED_OTHER when it starts (reverbd under chrt, a
// real-time policy) keeps the policy it inherited.
// kOther: the policy the process was started with.
enum class WorkerPolicy : uint8_t { kBatch, kOther };
std::optional<WorkerPolicy> parseWorkerPolicy(std::string_view name) noexcept;
std::string_view toString(WorkerPolicy policy) noexcept;

class WorkerPool {
 public:
  // Starts `workers` threads (at least 1). `sendRings`: each worker makes its own SendRing (the
  // caller has checked that this kernel allows one). `timed`: each worker fills its WorkerStats,
  // reading the clock twice per batch that goes out through the ring, else once per strand run
  // plus once per batch; never per request. Otherwise the WorkerStats stay zero. `policy`: what each
  // worker sets for itself before it takes a job.
  WorkerPool(JobQueue<ConnectionPtr>& queue, size_t workers, bool sendRings = false,
             bool timed = false, WorkerPolicy policy = WorkerPolicy::kOther);
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const noexcept { return count_; }
  // Thread-safe: one WorkerStats per worker, valid for the pool's life.
  std::span<const WorkerStats> workerStats() const noexcept { return {stats_.get(), count_}; }

  // Finishes the jobs already queued, then joins every worker. Idempotent.
  void stop();

 private:
  using Clock = std::chrono::steady_clock;

  void run(WorkerStats* stats);
  // Applies policy_ to the calling worker thread; a failure is logged, and the worker goes on.
  void applyPolicy() const noexcept;
  // Runs one batch of strands (no empty jobs), sending their replies together when `ring` is set.
  // `stats` (null: not timed) gets the batch's busy time and service times.
  void serve(std::span<ConnectionPtr> jobs, SendRing* ring, WorkerStats* stats) noexcept;

  JobQueue<ConnectionPtr>& queue_;
  const bool sendRings_;
  const WorkerPolicy policy_;
  const size_t count_;
  std::unique_ptr<WorkerStats[]> stats_;
  std::vector<std::thread> threads_;
};

}  // namespace reverb
