// The job queue as reverbd uses it (src/server/job_queue.h): one producer (the reactor) pushing
// shared connection pointers through its Producer token, N consumers (the workers) taking up to
// `bulk` at a time with popBulk, which parks them when the queue is empty. The baseline is the
// textbook mutex + condition_variable queue with the same calls, in the same binary.
// items/s counts items taken by consumers: each iteration pushes kRound items and ends when the
// last of them has been popped, so the figure is end to end, never just the push rate.
// The machine has few cores: 1 producer + 4 consumers on 2 cores is oversubscribed, and the label
// says so; that row shows the cost of oversubscription, not scaling.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/job_queue.h"

namespace reverb {
namespace {

constexpr size_t kRound = 16384;     // items per iteration
constexpr size_t kConnections = 1024;  // distinct objects the pointers refer to

struct FakeConnection {
  uint64_t serviced = 0;
};
using Item = std::shared_ptr<FakeConnection>;

// MutexQueue: the baseline. Threading: thread-safe.
class MutexQueue {
 public:
  void push(Item item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
  }
  size_t popBulk(Item* out, size_t max) {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !items_.empty(); });
    size_t n = std::min(max, items_.size());
    for (size_t i = 0; i < n; ++i) {
      out[i] = std::move(items_.front());
      items_.pop_front();
    }
    return n;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Item> items_;
};

// Adapters give both queues one shape: a producer handle for one thread, a consumer for each.
// LockFree<kJobQueueSpins> is the server's queue (consumers park at once); LockFree<10000> spins
// like moodycamel's default before parking, to show what spinning buys when a core is free.
template <int Spins>
struct LockFree {
  static constexpr const char* kName =
      Spins == kJobQueueSpins ? "JobQueue" : "JobQueue spinning before parking";
  JobQueue<Item, Spins> queue;
  struct Producer {
    explicit Producer(LockFree& q) : q(q), token(q.queue.makeProducer()) {}
    void push(Item item) { q.queue.push(token, std::move(item)); }
    LockFree& q;
    typename JobQueue<Item, Spins>::Producer token;
  };
  struct Consumer {
    explicit Consumer(LockFree& q) : q(q), token(q.queue.makeConsumer()) {}
    size_t popBulk(Item* out, size_t max) { return q.queue.popBulk(token, out, max); }
    void pushBack(Item item) { q.queue.push(std::move(item)); }
    LockFree& q;
    typename JobQueue<Item, Spins>::Consumer token;
  };
};

struct Locked {
  static constexpr const char* kName = "MutexCondvar";
  MutexQueue queue;
  struct Producer {
    explicit Producer(Locked& q) : q(q) {}
    void push(Item item) { q.queue.push(std::move(item)); }
    Locked& q;
  };
  struct Consumer {
    explicit Consumer(Locked& q) : q(q) {}
    size_t popBulk(Item* out, size_t max) { return q.queue.popBulk(out, max); }
    void pushBack(Item item) { q.queue.push(std::move(item)); }
    Locked& q;
  };
};

template <typename Queue>
void BM_Queue(benchmark::State& state) {
  const auto consumers = static_cast<size_t>(state.range(0));
  const auto bulk = static_cast<size_t>(state.range(1));
  Queue queue;
  std::vector<Item> connections;
  for (size_t i = 0; i < kConnections; ++i) connections.push_back(std::make_shared<FakeConnection>());

  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> target{0};
  std::vector<std::thread> threads;
  for (size_t c = 0; c < consumers; ++c) {
    threads.emplace_back([&] {
      typename Queue::Consumer consumer(queue);
      std::vector<Item> batch(bulk);
      bool stopping = false;
      while (!stopping) {
        size_t n = consumer.popBulk(batch.data(), bulk);
        size_t real = 0;
        for (size_t i = 0; i < n; ++i) {
          Item item = std::move(batch[i]);
          if (!item) {
            // Exactly one stop item per consumer: hand back any extra, as the worker pool does.
            if (stopping) consumer.pushBack(nullptr);
            stopping = true;
            continue;
          }
          benchmark::DoNotOptimize(item->serviced);  // touch the connection, as a worker would
          ++real;
        }
        if (real == 0) continue;
        uint64_t now = consumed.fetch_add(real, std::memory_order_acq_rel) + real;
        if (now == target.load(std::memory_order_acquire)) consumed.notify_one();
      }
    });
  }

  typename Queue::Producer producer(queue);
  uint64_t pushed = 0;
  for (auto _ : state) {
    target.store(pushed + kRound, std::memory_order_release);
    for (size_t i = 0; i < kRound; ++i) producer.push(connections[(pushed + i) % kConnections]);
    pushed += kRound;
    // Blocks (futex) until the consumers have taken the whole round; no spinning of our own.
    for (uint64_t seen = consumed.load(std::memory_order_acquire); seen < pushed;
         seen = consumed.load(std::memory_order_acquire)) {
      consumed.wait(seen, std::memory_order_acquire);
    }
  }
  for (size_t c = 0; c < consumers; ++c) producer.push(nullptr);
  for (auto& t : threads) t.join();

  state.SetItemsProcessed(static_cast<int64_t>(pushed));
  const size_t threadsUsed = consumers + 1;
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  state.SetLabel(std::string(Queue::kName) +
                 (threadsUsed > cores ? " oversubscribed: " + std::to_string(threadsUsed) +
                                            " threads on " + std::to_string(cores) + " cores"
                                      : ""));
}

void queueArgs(benchmark::internal::Benchmark* b) {
  // bulk 4 is worker_pool.cpp's batch; 64 shows what a larger batch would buy.
  b->ArgsProduct({{1, 2, 4}, {4, 64}})
      ->ArgNames({"consumers", "bulk"})
      ->UseRealTime()
      ->Repetitions(5)
      ->DisplayAggregatesOnly(true);
}

BENCHMARK_TEMPLATE(BM_Queue, LockFree<kJobQueueSpins>)->Apply(queueArgs);
BENCHMARK_TEMPLATE(BM_Queue, LockFree<10000>)->Apply(queueArgs);
BENCHMARK_TEMPLATE(BM_Queue, Locked)->Apply(queueArgs);

}  // namespace
}  // namespace reverb
