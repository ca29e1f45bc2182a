// IntervalLog: the time series of one LoadRun (the --json "timeseries"): for each interval of the
// measured window (LoadConfig::seriesInterval, 1 s by default), the correct replies completed in
// it, their latency (p50, p99, max) and the errors and mismatches that happened in it.
//
// Each worker thread keeps the interval it is in (IntervalShare) and hands it over once, when its
// clock passes the interval's end or the worker finishes; the log merges the threads' shares, and
// an interval whose every thread has handed in is reduced to its figures and its histogram freed,
// so memory stays at a few histograms however long the run. Ownership: owns the pending
// histograms. Threading: add() and retire() are thread-safe (one mutex, taken once per interval
// per thread, never per request); finish() once every worker has been joined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "base/mutex.h"
#include "load/histogram.h"

namespace reverb::load {

// One interval of the series, as reported.
struct IntervalFigures {
  double start = 0;         // seconds from the window's start to the interval's
  double seconds = 0;       // its length: the series interval, or less for the window's last one
  uint64_t requests = 0;    // correct replies completed in it
  uint64_t errors = 0;      // connection failures in it
  uint64_t mismatches = 0;  // wrong replies in it
  uint64_t p50Nanos = 0;    // latency of its requests (from the intended send time in open loop)
  uint64_t p99Nanos = 0;
  uint64_t maxNanos = 0;

  double requestsPerSecond() const noexcept {
    return seconds > 0 ? static_cast<double>(requests) / seconds : 0;
  }
};

// One thread's counts for the interval it is in. Plain data, owned by its worker.
struct IntervalShare {
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t mismatches = 0;
};

class IntervalLog {
 public:
  // `threads`: how many workers hand in shares; `intervalNanos`: the length of an interval (> 0).
  IntervalLog(int threads, int64_t intervalNanos);

  int64_t intervalNanos() const noexcept { return intervalNanos_; }

  // A worker hands in its share of interval `index` (latency may be null: nothing recorded). Each
  // worker hands in each index at most once, in increasing order. Thread-safe.
  void add(size_t index, const IntervalShare& share, const Histogram* latency);

  // A worker is done: it hands in nothing after interval `lastIndex` (or nothing at all when
  // handedAny is false), so later intervals stop waiting for it. Thread-safe.
  void retire(size_t lastIndex, bool handedAny);

  // The series for a window `windowSeconds` long: one entry per interval that overlaps it, in
  // order, zeros where nobody handed anything in. Call after every worker is done.
  std::vector<IntervalFigures> finish(double windowSeconds);

 private:
  struct Pending {
    IntervalShare sum;
    std::unique_ptr<Histogram> latency;  // made when the first share with a latency arrives
    int handedIn = 0;
  };

  // Reduces a pending interval to its figures. Caller holds mutex_.
  void complete(size_t index, Pending& pending) REVERB_REQUIRES(mutex_);
  // Workers no longer expected for `index` (retired before it). Caller holds mutex_.
  int retiredBefore(size_t index) const REVERB_REQUIRES(mutex_);

  const int threads_;
  const int64_t intervalNanos_;
  mutable Mutex mutex_;
  std::map<size_t, Pending> pending_ REVERB_GUARDED_BY(mutex_);
  // Start and seconds set by finish().
  std::map<size_t, IntervalFigures> done_ REVERB_GUARDED_BY(mutex_);
  // The last index of each retired worker (-1: none).
  std::vector<long long> retiredAfter_ REVERB_GUARDED_BY(mutex_);
};

}  // namespace reverb::load
