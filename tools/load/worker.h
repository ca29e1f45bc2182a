// Worker: one thread of a LoadRun, with its share of the connections and its epoll loop; and
// what the coordinating thread (load_run.cpp) shares with its workers: the clock, the run's
// timeline, each thread's plan, the console that keeps stderr lines whole.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "base/mutex.h"
#include "base/result.h"
#include "base/thread_annotations.h"
#include "load/histogram.h"
#include "load/interval_log.h"
#include "load/load_run.h"
#include "load/payload.h"

namespace reverb::load {

using Nanos = int64_t;
inline constexpr Nanos kNever = INT64_MAX;
inline constexpr Nanos kSecond = 1'000'000'000;

// CLOCK_MONOTONIC in nanoseconds. Inline: the worker reads it once per reply.
inline Nanos monotonicNow() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * kSecond + ts.tv_nsec;
}

// A relative or absolute time for ppoll, epoll_pwait2 or clock_nanosleep; negative becomes 0.
inline timespec toTimespec(Nanos ns) noexcept {
  if (ns < 0) ns = 0;
  return timespec{static_cast<time_t>(ns / kSecond), static_cast<long>(ns % kSecond)};
}

// The pending error of a socket (SO_ERROR, which reading clears), or errno if it cannot be read.
int socketError(int fd) noexcept;

// Shared by the workers of one run: how many diffs and error lines may still be printed, and the
// lock that keeps each one whole on stderr (it guards the stream, not a field).
struct Console {
  Mutex mutex;
  std::atomic<int> diffsLeft{0};
  std::atomic<int> errorLinesLeft{0};
  std::atomic<bool> errorsElided{false};
};

// Timeline: the run's schedule, fixed by LoadRun::run() just before the threads start; each
// worker keeps its own copy.
struct Timeline {
  Nanos start = 0;
  Nanos measureStart = 0;
  Nanos measureEnd = kNever;  // kNever when the run is bounded by a request count
  bool byCount = false;
};

// ThreadPlan: one worker's share of the run, set by LoadRun::create().
struct ThreadPlan {
  int index = 0;
  int slots = 0;      // connections of this thread
  int firstSlot = 0;  // global number of its first connection, for messages
  uint64_t quota = 0;  // byCount: requests (connect mode: connections) after warmup
  double rate = 0;     // this thread's share of rate or connectRate; 0 = unpaced
  Nanos phase = 0;     // offset of this thread's schedule, so threads do not send in lockstep
};

// Histograms: one worker's latencies in nanoseconds, merged into the LoadReport's after join().
struct Histograms {
  Histogram latency;
  Histogram latencyUncorrected;
  Histogram sendDelay;
  Histogram connectLatency;
  Histogram connectLatencyUncorrected;
};

// Worker: one thread's share of the connections of a LoadRun, and its epoll loop. Owns its
// sockets, epoll fd and figures; borrows the run's config, pool, eventfds and console. Threading:
// create() on the coordinating thread, run() on its own thread; snapshot() from any thread
// (locks); the public figures may be read once the thread has been joined.
//
// The loop itself is WorkerLoop, in worker.cpp's anonymous namespace: with internal linkage the
// compiler inlines the per-request functions (onEvent, readReplies, consume, completeReply) into
// run(), as it did when the whole worker was file-local. Member functions with external linkage
// in this -fPIC library may be interposed, so GCC would call each of them out of line.
class Worker {
 public:
  // Creates the worker's epoll set, with the run's stop eventfd in it; returns the failing call's
  // error. Borrows config, pool, stopFd, doneFd, console and intervals, which must outlive the
  // worker.
  static Result<std::unique_ptr<Worker>> create(const LoadConfig& config, const MessagePool& pool,
                                                const ThreadPlan& plan, int stopFd, int doneFd,
                                                Console& console, IntervalLog& intervals);
  virtual ~Worker() = default;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The worker's loop, on its own thread, until the timeline's end, its quota or the stop fd.
  virtual void run(const Timeline& timeline) noexcept = 0;

  // Copies the figures published so far. Thread-safe.
  void snapshot(LoadCounters& counters, Histogram& latency) REVERB_EXCLUDES(publishMutex_) {
    MutexLock lock(publishMutex_);
    counters.add(publishedCounters_);
    latency.merge(publishedLatency_);
  }

  // Read after join().
  LoadCounters counters;
  Histograms histograms;
  Nanos finishedAt = 0;
  uint64_t backlogAtEnd = 0;
  bool stalled = false;
  std::optional<Error> failure;  // only epoll_wait failing; set-up failures are create()'s

 protected:
  Worker() = default;

  Mutex publishMutex_;  // guards the two figures below, which snapshot() reads
  LoadCounters publishedCounters_ REVERB_GUARDED_BY(publishMutex_);
  Histogram publishedLatency_ REVERB_GUARDED_BY(publishMutex_);
};

}  // namespace reverb::load
