// ServerStats: the server's counters, read by the log at exit and by the metrics endpoint
// (server/metrics.h). Counters written by the reactor and by the workers sit on separate cache
// lines, and workers add once per batch, not per request, so counting costs no contended cache line
// on the hot path. Threading: thread-safe (relaxed atomics; a reader sees each counter eventually,
// not a snapshot).
//
// WorkerStats: what one worker measures when request timing is on (ServerConfig::timeRequests):
// its busy time and the histogram of per-request service time. One per worker, written by that
// worker alone with plain loads and stores (no read-modify-write, no lock prefix), read by the
// metrics scrape, which sums the workers. Threading: one writer (its worker), any readers.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace reverb {

// Why a connection ended. Recorded once per connection, by whoever decides first (the strand or
// the reactor); a later cause (the peer's reset during a lingering close, say) does not replace it.
enum class CloseReason : uint8_t {
  kEof,             // the peer closed its side and every reply was sent (the normal end)
  kReset,           // a socket error: ECONNRESET on receive, EPIPE on send, a failed re-arm
  kIdle,            // --idle-timeout: no unfinished request and no unsent reply for that long
  kRequestTimeout,  // --request-timeout: a started request, or unsent replies, made no progress
  kOutputLimit,     // --output-hard-limit reached, or above --output-soft-limit too long
  kProtocolError,   // an over-long line (--max-line) or frame (--max-frame)
  kDrain,           // the SIGTERM drain ended the input, or force-closed it at --drain-timeout
  kRejected,        // --max-connections: accepted and closed at once, never served
  kInternal,        // the server could not serve it (the job queue could not grow)
};
inline constexpr size_t kCloseReasonCount = 9;

// "eof", "reset", "idle", "request_timeout", "output_limit", "protocol_error", "drain",
// "rejected", "internal": stable names, for logs and metric labels.
constexpr std::string_view toString(CloseReason reason) noexcept {
  constexpr std::array<std::string_view, kCloseReasonCount> kNames = {
      "eof",   "reset",    "idle",    "request_timeout", "output_limit", "protocol_error",
      "drain", "rejected", "internal"};
  return kNames[static_cast<size_t>(reason)];
}

// BufferGauge: the bytes every connection holds in its buffers (received and not yet parsed, and
// replies not yet taken by the kernel), for --max-buffered. One signed counter per writing
// thread, each on its own cache line: the reactor adds what it receives, a strand subtracts what
// it sends or drops, and neither ever writes a line the other one writes. total() sums them.
// Threads are given shards round-robin on first use; threads that share a shard stay correct (the
// adds are atomic), only slower. Threading: thread-safe.
class BufferGauge {
 public:
  static constexpr size_t kShards = 32;

  // Adds `delta` to the calling thread's shard.
  void add(int64_t delta) noexcept {
    shards_[shardIndex()].bytes.fetch_add(delta, std::memory_order_relaxed);
  }
  // The calling thread's own shard (the reactor's: see Reactor::overBudget).
  int64_t own() const noexcept {
    return shards_[shardIndex()].bytes.load(std::memory_order_relaxed);
  }
  // The sum of every shard: exact once the writers are quiet, otherwise a recent value.
  int64_t total() const noexcept {
    int64_t sum = 0;
    for (const Shard& s : shards_) sum += s.bytes.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  struct alignas(64) Shard {
    std::atomic<int64_t> bytes{0};
  };
  static size_t shardIndex() noexcept {
    static std::atomic<size_t> next{0};
    thread_local const size_t index = next.fetch_add(1, std::memory_order_relaxed) % kShards;
    return index;
  }

  std::array<Shard, kShards> shards_;
};

struct ServerStats {
  using Counter = std::atomic<uint64_t>;

  // Written by the reactor thread.
  alignas(64) Counter accepted{0};  // connections accepted and served (not those rejected)
  Counter closed{0};                // accepted connections closed, whatever the reason; the open
                                    // connections are accepted - closed
  Counter bytesIn{0};
  Counter resets{0};         // connections that ended with a socket error (ECONNRESET, ...)
  Counter acceptPauses{0};   // times accepting paused because the process ran out of fds
  Counter readPauses{0};     // times a connection's reading paused on its high-water mark
  Counter drainForced{0};    // connections force-closed when the drain timeout expired
  Counter proxyHeaders{0};   // PROXY protocol headers accepted (listeners that require one)
  Counter proxyRejected{0};  // connections closed for want of a valid PROXY header
  Counter rejected{0};       // connections closed at accept by --max-connections
  Counter budgetPauses{0};   // times a connection's reading paused because every connection
                             // together held more than --max-buffered
  Counter mallocTrims{0};    // times freed buffer memory was handed back to the kernel
  // Connections closed, by reason (index: CloseReason). closedBy[kRejected] equals `rejected`;
  // every other entry counts accepted connections, and together they sum to `closed`.
  std::array<Counter, kCloseReasonCount> closedBy{};

  // Written by the workers.
  alignas(64) Counter requests{0};
  Counter bytesOut{0};
  Counter tooLong{0};           // lines over --max-line and frames over --max-frame
  Counter truncated{0};         // connections that ended in the middle of a frame
  Counter writeErrors{0};       // replies lost because the peer had gone (EPIPE, ECONNRESET)
  Counter bufferBytesFreed{0};  // capacity of connection buffers given back to the allocator:
                                // closed connections, bursts that shrank, idle connections

  // Bytes held in connection buffers now (input not yet parsed, replies not yet sent), the
  // quantity --max-buffered bounds: buffered.total().
  BufferGauge buffered;

  static void add(Counter& c, uint64_t n) noexcept { c.fetch_add(n, std::memory_order_relaxed); }
  static uint64_t get(const Counter& c) noexcept { return c.load(std::memory_order_relaxed); }
  uint64_t closedFor(CloseReason reason) const noexcept {
    return get(closedBy[static_cast<size_t>(reason)]);
  }
};

// Upper bounds of the service-time histogram's buckets, in nanoseconds (Prometheus' 1-2.5-5
// steps, 5 us to 10 s); a last bucket, +Inf, takes the rest.
inline constexpr std::array<uint64_t, 20> kServiceTimeBoundsNs = {
    5'000,       10'000,        25'000,        50'000,        100'000,
    250'000,     500'000,       1'000'000,     2'500'000,     5'000'000,
    10'000'000,  25'000'000,    50'000'000,    100'000'000,   250'000'000,
    500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

struct alignas(64) WorkerStats {
  using Counter = std::atomic<uint64_t>;
  static constexpr size_t kBuckets = kServiceTimeBoundsNs.size() + 1;

  Counter busyNs{0};                               // time spent serving strands
  Counter serviceSumNs{0};                         // service times of every request, summed
  std::array<Counter, kBuckets> serviceBuckets{};  // requests per bucket, not cumulative

  // The bucket of a service time: the first whose bound is >= ns.
  static size_t bucketOf(uint64_t ns) noexcept {
    size_t i = 0;
    while (i < kServiceTimeBoundsNs.size() && ns > kServiceTimeBoundsNs[i]) ++i;
    return i;
  }

  // Owning worker only: `requests` requests, each served in `elapsed`.
  void recordService(uint64_t requests, std::chrono::nanoseconds elapsed) noexcept {
    const uint64_t ns = elapsed.count() > 0 ? static_cast<uint64_t>(elapsed.count()) : 0;
    bump(serviceBuckets[bucketOf(ns)], requests);
    bump(serviceSumNs, requests * ns);
  }
  // Owning worker only.
  void recordBusy(std::chrono::nanoseconds elapsed) noexcept {
    if (elapsed.count() > 0) bump(busyNs, static_cast<uint64_t>(elapsed.count()));
  }

  // Single writer: a load and a store, each relaxed, instead of an atomic add.
  static void bump(Counter& c, uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

}  // namespace reverb
