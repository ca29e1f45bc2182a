#include "server/worker_pool.h"

#include <pthread.h>

#include <array>
#include <string>

namespace reverb {
namespace {

// Jobs taken per queue operation. Small, so that with few busy connections the work still
// spreads over every worker instead of one worker taking it all.
constexpr size_t kBatch = 4;

}  // namespace

WorkerPool::WorkerPool(JobQueue<ConnectionPtr>& queue, size_t workers) : queue_(queue) {
  if (workers == 0) workers = 1;
  threads_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) {
    threads_.emplace_back([this] { run(); });
    std::string name = "reverb-w" + std::to_string(i);
    pthread_setname_np(threads_.back().native_handle(), name.c_str());
  }
}

void WorkerPool::stop() {
  // One empty job per worker: each worker exits on the first it pops. Jobs queued before them by
  // the same producer come out first (FIFO per producer).
  for (size_t i = 0; i < threads_.size(); ++i) queue_.push(nullptr);
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void WorkerPool::run() {
  auto consumer = queue_.makeConsumer();
  std::array<ConnectionPtr, kBatch> jobs;
  bool stopping = false;
  while (!stopping) {
    size_t n = queue_.popBulk(consumer, jobs.data(), jobs.size());
    for (size_t i = 0; i < n; ++i) {
      ConnectionPtr job = std::move(jobs[i]);
      if (!job) {
        // Each worker must take exactly one of the empty jobs; hand back any extra.
        if (stopping) queue_.push(nullptr);
        stopping = true;
        continue;
      }
      // More input arrived while the strand ran: requeue it behind the others, for fairness.
      if (job->service()) queue_.push(std::move(job));
    }
  }
}

}  // namespace reverb
