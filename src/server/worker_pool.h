// WorkerPool: a fixed set of threads that run connection strands taken from the job queue.
// A worker takes up to four jobs at a time. With send rings, it parses all of them and then hands
// their replies to the kernel with one io_uring_enter (SendRing); without, each strand sends its
// own replies with send(2).
// Ownership: owns its threads and their send rings; borrows the queue, which must outlive the pool.
// Threading: construct and stop() from one thread; the workers touch only the queue and the
// connections they pop.
#pragma once

#include <cstddef>
#include <span>
#include <thread>
#include <vector>

#include "server/connection.h"
#include "server/job_queue.h"
#include "server/send_ring.h"

namespace reverb {

class WorkerPool {
 public:
  // Starts `workers` threads (at least 1). `sendRings`: each worker makes its own SendRing (the
  // caller has checked that this kernel allows one).
  WorkerPool(JobQueue<ConnectionPtr>& queue, size_t workers, bool sendRings = false);
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const noexcept { return threads_.size(); }

  // Finishes the jobs already queued, then joins every worker. Idempotent.
  void stop();

 private:
  void run();
  // Runs one batch of strands (no empty jobs), sending their replies together when `ring` is set.
  void serve(std::span<ConnectionPtr> jobs, SendRing* ring) noexcept;

  JobQueue<ConnectionPtr>& queue_;
  const bool sendRings_;
  std::vector<std::thread> threads_;
};

}  // namespace reverb
