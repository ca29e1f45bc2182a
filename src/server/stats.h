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

namespace reverb {

struct ServerStats {
  using Counter = std::atomic<uint64_t>;

  // Written by the reactor thread.
  alignas(64) Counter accepted{0};
  Counter closed{0};
  Counter bytesIn{0};
  Counter resets{0};           // connections that ended with a socket error (ECONNRESET, ...)
  Counter acceptPauses{0};     // times accepting paused because the process ran out of fds
  Counter readPauses{0};       // times a connection's reading paused on its high-water mark
  Counter drainForced{0};      // connections force-closed when the drain timeout expired
  Counter proxyHeaders{0};     // PROXY protocol headers accepted (listeners that require one)
  Counter proxyRejected{0};    // connections closed for want of a valid PROXY header

  // Written by the workers.
  alignas(64) Counter requests{0};
  Counter bytesOut{0};
  Counter tooLong{0};          // lines over --max-line and frames over --max-frame
  Counter truncated{0};        // connections that ended in the middle of a frame
  Counter writeErrors{0};      // replies lost because the peer had gone (EPIPE, ECONNRESET)

  static void add(Counter& c, uint64_t n) noexcept { c.fetch_add(n, std::memory_order_relaxed); }
  static uint64_t get(const Counter& c) noexcept { return c.load(std::memory_order_relaxed); }
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
