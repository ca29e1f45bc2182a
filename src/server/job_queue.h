// JobQueue<T>: the lock-free queue that carries work from the reactor to the worker pool.
// A thin, named wrapper over moodycamel::BlockingConcurrentQueue (libconcurrentqueue-dev):
//  - push is lock-free and FIFO per producer; the reactor pushes through its own Producer token.
//  - pop parks an idle consumer on a semaphore at once (no spinning, see kJobQueueSpins), so an
//    idle pool uses no CPU, and a push wakes a sleeper (one futex call) only when some consumer is
//    actually asleep.
//  - popBulk takes up to `max` items at once, so a busy worker pays one queue operation per batch.
// Threading: thread-safe; a Producer or Consumer token belongs to one thread.
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <chrono>
#include <cstddef>
#include <iterator>
#include <utility>

namespace reverb {

// How many times an idle consumer re-checks the queue before it parks on the semaphore.
// moodycamel's default is 10000 (tens of microseconds). We park at once: on a small machine a
// spinning worker takes the core from the reactor and from the clients, and on 2 cores the
// default cost reverbd-w2 a fifth of its closed-loop throughput at 50 connections
// (docs/BENCHMARKS.md, "Where reverbd's time goes").
inline constexpr int kJobQueueSpins = 0;

template <int Spins>
struct JobQueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
  static const int MAX_SEMA_SPINS = Spins;
};

template <typename T, int Spins = kJobQueueSpins>
class JobQueue {
 public:
  using Producer = moodycamel::ProducerToken;
  using Consumer = moodycamel::ConsumerToken;

  JobQueue() = default;
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  Producer makeProducer() { return Producer(queue_); }
  Consumer makeConsumer() { return Consumer(queue_); }

  // Thread-safe. Fails only if memory runs out (returns false; the item is not queued).
  bool push(Producer& producer, T item) { return queue_.enqueue(producer, std::move(item)); }
  bool push(T item) { return queue_.enqueue(std::move(item)); }
  // Moves items[0..n) in as one operation: the consumers see them in order, and the semaphore is
  // signalled once for all of them. Fails (nothing queued) only if memory runs out.
  bool pushBulk(Producer& producer, T* items, size_t n) {
    return queue_.enqueue_bulk(producer, std::make_move_iterator(items), n);
  }

  // Blocks until at least one item is available; moves up to `max` items to out[0..n) and
  // returns n >= 1.
  size_t popBulk(Consumer& consumer, T* out, size_t max) {
    return queue_.wait_dequeue_bulk(consumer, out, max);
  }

  // As popBulk, but gives up after `timeout` and returns 0.
  size_t popBulkFor(Consumer& consumer, T* out, size_t max, std::chrono::microseconds timeout) {
    return queue_.wait_dequeue_bulk_timed(consumer, out, max, timeout);
  }

  // Approximate: exact only when no thread is pushing or popping.
  size_t sizeApprox() const { return queue_.size_approx(); }

 private:
  moodycamel::BlockingConcurrentQueue<T, JobQueueTraits<Spins>> queue_;
};

}  // namespace reverb
