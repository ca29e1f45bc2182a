#include "server/worker_pool.h"

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstring>
#include <span>
#include <string>

#include "server/send_ring.h"

namespace reverb {
namespace {

// Jobs taken per queue operation. Small, so that with few busy connections the work still
// spreads over every worker instead of one worker taking it all.
constexpr size_t kBatch = 4;

}  // namespace

std::optional<WorkerPolicy> parseWorkerPolicy(std::string_view name) noexcept {
  if (name == "batch") return WorkerPolicy::kBatch;
  if (name == "other") return WorkerPolicy::kOther;
  return std::nullopt;
}

std::string_view toString(WorkerPolicy policy) noexcept {
  switch (policy) {
    case WorkerPolicy::kBatch:
      return "batch";
    case WorkerPolicy::kOther:
      return "other";
  }
  return "?";
}

WorkerPool::WorkerPool(JobQueue<ConnectionPtr>& queue, size_t workers, bool sendRings,
                       bool timed, WorkerPolicy policy)
    : queue_(queue),
      sendRings_(sendRings),
      policy_(policy),
      count_(workers == 0 ? 1 : workers),
      stats_(std::make_unique<WorkerStats[]>(count_)) {
  threads_.reserve(count_);
  for (size_t i = 0; i < count_; ++i) {
    WorkerStats* stats = timed ? &stats_[i] : nullptr;
    threads_.emplace_back([this, stats] { run(stats); });
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

void WorkerPool::applyPolicy() const noexcept {
  if (policy_ != WorkerPolicy::kBatch) return;
  int current = 0;
  sched_param param{};
  if (pthread_getschedparam(pthread_self(), &current, &param) != 0 || current != SCHED_OTHER) {
    return;  // started under another policy (chrt): the operator's choice stands
  }
  param.sched_priority = 0;
  if (int error = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param); error != 0) {
    spdlog::warn("worker: SCHED_BATCH refused ({}); this worker stays SCHED_OTHER",
                 std::strerror(error));
  }
}

void WorkerPool::run(WorkerStats* stats) {
  applyPolicy();
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
    serve(std::span(jobs.data(), n), ring.get(), stats);
  }
}

void WorkerPool::serve(std::span<ConnectionPtr> jobs, SendRing* ring,
                       WorkerStats* stats) noexcept {
  std::array<ssize_t, kBatch> sent;
  sent.fill(Connection::kNotSent);
  // Timed: the clock is read when the batch starts and after each strand's replies reach the
  // kernel, never per request (see ServiceTiming). Through the ring that is once for the whole
  // batch, whose replies leave in one io_uring_enter.
  std::array<ServiceTiming, kBatch> timing{};
  ServiceTiming* timed = stats != nullptr ? timing.data() : nullptr;
  const Clock::time_point start = stats != nullptr ? Clock::now() : Clock::time_point{};
  for (ServiceTiming& t : timing) t.start = start;
  const bool together = ring != nullptr && jobs.size() > 1;
  if (together) {
    // Parse every strand's input first, then hand all their replies to the kernel at once. The
    // strands stay scheduled in between, so no other worker touches their buffers.
    std::array<SendRing::Send, kBatch> sends;
    std::array<size_t, kBatch> owner{};
    size_t count = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
      std::string_view replies = jobs[i]->prepare(timed != nullptr ? &timed[i] : nullptr);
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
  Clock::time_point last = start;
  for (size_t i = 0; i < jobs.size(); ++i) {
    ServiceTiming* t = timed != nullptr ? &timed[i] : nullptr;
    if (t != nullptr && !together) t->start = last;
    const bool more = together ? jobs[i]->complete(sent[i], t) : jobs[i]->service(t);
    if (t != nullptr && !together) {
      // One strand at a time: its end is the next one's start.
      const Clock::time_point now = Clock::now();
      if (t->completed > 0) stats->recordService(t->completed, now - t->since);
      last = now;
    }
    // More input arrived while the strand ran: requeue it behind the others, for fairness.
    if (more) {
      queue_.push(std::move(jobs[i]));
    } else {
      jobs[i].reset();
    }
  }
  if (stats == nullptr) return;
  if (together) {
    last = Clock::now();
    for (const ServiceTiming& t : timing) {
      if (t.completed > 0) stats->recordService(t.completed, last - t.since);
    }
  }
  stats->recordBusy(last - start);
}

}  // namespace reverb
