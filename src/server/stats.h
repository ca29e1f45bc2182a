// ServerStats: the server's counters, read by the log at exit and, later, by the metrics endpoint.
// Counters written by the reactor and by the workers sit on separate cache lines, and workers add
// once per batch, not per request, so counting costs no contended cache line on the hot path.
// Threading: thread-safe (relaxed atomics; a reader sees each counter eventually, not a snapshot).
#pragma once

#include <atomic>
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

}  // namespace reverb
