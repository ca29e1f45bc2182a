// WorkerPool: a fixed set of threads that run connection strands taken from the job queue.
// Ownership: owns its threads; borrows the queue, which must outlive the pool.
// Threading: construct and stop() from one thread; the workers touch only the queue and the
// connections they pop.
#pragma once

#include <cstddef>
#include <thread>
#include <vector>

#include "server/connection.h"
#include "server/job_queue.h"

namespace reverb {

class WorkerPool {
 public:
  // Starts `workers` threads (at least 1).
  WorkerPool(JobQueue<ConnectionPtr>& queue, size_t workers);
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const noexcept { return threads_.size(); }

  // Finishes the jobs already queued, then joins every worker. Idempotent.
  void stop();

 private:
  void run();

  JobQueue<ConnectionPtr>& queue_;
  std::vector<std::thread> threads_;
};

}  // namespace reverb
