#include "server/worker_pool.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <array>
#include <span>
#include <string>

#include "server/send_ring.h"

namespace reverb {
namespace {

// Jobs taken per queue operation. Small, so that with few busy connections the work still
// spreads over every worker instead of one worker taking it all.
constexpr size_t kBatch = 4;

}  // namespace

WorkerPool::WorkerPool(JobQueue<ConnectionPtr>& queue, size_t workers, bool sendRings)
    : queue_(queue), sendRings_(sendRings) {
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
  std::unique_ptr<SendRing> ring;
  if (sendRings_) {
    // Server::create made one ring already, so this fails only if the kernel runs out of memory
    // for rings meanwhile; the worker then sends with send(2), which is slower, not wrong.
    if (auto created = SendRing::create()) {
      ring = std::move(*created);
    } else {
      spdlog::warn("{}; this worker sends with send(2)", created.error().message());
    }
  }
  auto consumer = queue_.makeConsumer();
  std::array<ConnectionPtr, kBatch> jobs;
  bool stopping = false;
  while (!stopping) {
    size_t popped = queue_.popBulk(consumer, jobs.data(), jobs.size());
    size_t n = 0;  // the real jobs, moved to the front
    for (size_t i = 0; i < popped; ++i) {
      if (jobs[i]) {
        if (n != i) jobs[n] = std::move(jobs[i]);
        ++n;
      } else {
        // Each worker must take exactly one of the empty jobs; hand back any extra.
        if (stopping) queue_.push(nullptr);
        stopping = true;
      }
    }
    serve(std::span(jobs.data(), n), ring.get());
  }
}

void WorkerPool::serve(std::span<ConnectionPtr> jobs, SendRing* ring) noexcept {
  std::array<ssize_t, kBatch> sent;
  sent.fill(Connection::kNotSent);
  const bool together = ring != nullptr && jobs.size() > 1;
  if (together) {
    // Parse every strand's input first, then hand all their replies to the kernel at once. The
    // strands stay scheduled in between, so no other worker touches their buffers.
    std::array<SendRing::Send, kBatch> sends;
    std::array<size_t, kBatch> owner{};
    size_t count = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
      std::string_view replies = jobs[i]->prepare();
      // Large replies go with send(2): copying them costs far more than the system call saved,
      // and a socket they fill would make complete() try again anyway.
      if (replies.empty() || replies.size() > SendRing::kLargeReply) continue;
      sends[count] = {jobs[i]->fd(), replies, 0};
      owner[count++] = i;
    }
    // A lone reply is cheaper with send(2), which complete() makes itself.
    if (count > 1) {
      ring->sendAll(std::span(sends.data(), count));
      for (size_t k = 0; k < count; ++k) sent[owner[k]] = sends[k].result;
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    const bool more = together ? jobs[i]->complete(sent[i]) : jobs[i]->service();
    // More input arrived while the strand ran: requeue it behind the others, for fairness.
    if (more) {
      queue_.push(std::move(jobs[i]));
    } else {
      jobs[i].reset();
    }
  }
}

}  // namespace reverb
