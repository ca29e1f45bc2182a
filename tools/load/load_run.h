// LoadRun: one load test against one target, the engine of reverb-load and of bench/. Owns its
// workers (one thread and epoll loop each, connections spread over them) and the stop eventfd;
// borrows the MessagePool. Threading: create() and run() on one thread; stop() from any thread or
// a signal handler.
//
// What a run measures (see also README "## reverb-load"):
// - requests mode, closed loop (rate == 0): each connection keeps `pipeline` requests in flight;
//   latency runs from the moment a request is queued for sending to the moment its last reply byte
//   is read.
// - requests mode, open loop (rate > 0): requests are due at a constant pace (rate / threads per
//   thread); each due request goes to a connection with fewer than `pipeline` in flight, or waits
//   for one. Latency runs from the request's intended time (coordinated omission corrected); the
//   uncorrected figure (from the actual send) is kept beside it, with the send delay itself.
// - connect mode: each of `connections` slots loops connect -> send one request -> read the whole
//   reply -> check it -> close (FIN, or RST via SO_LINGER {1, 0}). Connect latency (connect() to
//   writable) is a histogram of its own; connectRate > 0 paces connection starts as rate paces
//   requests, with the same correction.
// - Every reply byte is compared with MessagePool::reply(); a reply that differs is a mismatch,
//   after which the connection is closed and replaced (its framing can no longer be trusted).
// - Figures cover the window [warmup, warmup + duration) (or, with `requests`, until that many
//   requests issued after the warmup complete). Mismatches and errors cover the whole run, warmup
//   included: a wrong reply is wrong whenever it arrives.
// - The window is also cut into intervals of `seriesInterval` (interval_log.h): the time series of
//   requests, latency, errors and mismatches, each event in the interval it happened in, so the
//   intervals add up to the window's figures.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/net.h"
#include "base/result.h"
#include "load/histogram.h"
#include "load/interval_log.h"
#include "load/payload.h"
#include "load/system_info.h"

namespace reverb::load {

enum class Mode : uint8_t { kRequests, kConnect };
enum class CloseMode : uint8_t { kFin, kRst };

std::string_view toString(Mode mode) noexcept;
std::string_view toString(CloseMode close) noexcept;

// Why a connection failed. Mismatches are counted apart (LoadReport::mismatches).
enum class ErrorCause : uint8_t {
  kRefused,   // ECONNREFUSED on connect
  kReset,     // ECONNRESET / EPIPE: the server reset the connection
  kTimeout,   // no connect or no complete reply within LoadConfig::timeout
  kEarlyEof,  // the server closed the connection while a reply was owed (or an idle one)
  kNoPort,    // EADDRNOTAVAIL: no local port free for this source address (TIME_WAIT, range)
  kOther,     // any other socket error
};
inline constexpr size_t kErrorCauseCount = 6;
std::string_view toString(ErrorCause cause) noexcept;

struct LoadConfig {
  SocketAddress target;
  Mode mode = Mode::kRequests;
  int threads = 1;
  int connections = 10;  // connections (requests mode) or concurrent slots (connect mode)
  int pipeline = 1;      // requests in flight per connection (requests mode)
  double rate = 0;       // requests/s in total; 0 = closed loop
  double connectRate = 0;  // connect mode: connection starts/s in total; 0 = as fast as slots go
  CloseMode close = CloseMode::kFin;
  int sourceAddrs = 1;   // > 1: bind to 127.0.0.1 .. 127.0.0.N with IP_BIND_ADDRESS_NO_PORT
  std::chrono::nanoseconds duration = std::chrono::seconds(10);
  uint64_t requests = 0;  // > 0: run until this many requests (connect mode: connections) are done
  std::chrono::nanoseconds warmup = std::chrono::seconds(1);
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);
  std::chrono::nanoseconds progressInterval = std::chrono::seconds(1);
  std::chrono::nanoseconds seriesInterval = std::chrono::seconds(1);  // the time series' step
  int maxDiffs = 5;    // mismatches printed as hex diffs on stderr
  int maxErrorLines = 5;  // errors described on stderr, one line each
  bool preflightConnect = true;  // check the target accepts a connection before starting
};

// Returns an error sentence when the settings contradict each other (pipelining in chunk
// framing, source addresses on an IPv6 target, ...).
Result<void> validate(const LoadConfig& config, Framing framing);

struct LoadCounters {
  uint64_t requests = 0;     // replies received complete and correct, in the window
  uint64_t connections = 0;  // connections established, in the window
  uint64_t bytesSent = 0;    // in the window
  uint64_t bytesReceived = 0;
  uint64_t mismatches = 0;  // whole run
  std::array<uint64_t, kErrorCauseCount> errors{};  // whole run
  uint64_t completedAll = 0;  // correct replies, warmup included (progress line)
  uint64_t connectionsAll = 0;

  uint64_t errorTotal() const noexcept;
  void add(const LoadCounters& other) noexcept;
};

struct LoadReport {
  double seconds = 0;  // the measured window
  LoadCounters counters;
  Histogram latency;             // ns; open loop: from intended send time
  Histogram latencyUncorrected;  // ns; open loop: from actual send time (else empty)
  Histogram sendDelay;           // ns; open loop: actual - intended send time (else empty)
  Histogram connectLatency;      // ns; connect() to writable (with connectRate: from intended)
  Histogram connectLatencyUncorrected;  // ns; with connectRate: from the actual connect()
  uint64_t backlogAtEnd = 0;  // open loop: requests due in the window (until 1 ms before its end) never sent
  ProcessCpu cpu;             // this process, in the window
  std::optional<double> machineBusy;  // fraction of all CPUs busy in the window (/proc/stat)
  bool interrupted = false;   // stop() ended the run early
  bool stalled = false;       // --requests: only failures for two timeouts, so it gave up
  bool openLoop = false;
  bool pacedConnects = false;
  std::vector<IntervalFigures> series;  // the window, interval by interval

  // Adds a later run's figures to these, as if its window followed this one's: counts, times and
  // histograms add up, machineBusy becomes the window-weighted mean, the series is appended (its
  // starts shifted by this window's length). How the steps of a sweep make the whole run.
  void add(const LoadReport& later);

  double requestsPerSecond() const noexcept;
  double connectionsPerSecond() const noexcept;
  // Own CPU time per correct reply (connect mode: per connection), microseconds; 0 if none.
  double cpuMicrosPerRequest() const noexcept;
};

// A progress sample, once per LoadConfig::progressInterval.
struct Progress {
  double elapsed = 0;   // seconds since the run started, warmup included
  bool warmup = false;
  double requestsPerSecond = 0;     // over the last interval
  double connectionsPerSecond = 0;  // over the last interval
  uint64_t p99Nanos = 0;            // over the window so far (0 during warmup)
  uint64_t errors = 0;              // so far
  uint64_t mismatches = 0;
};

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // Called on the thread inside run().
  virtual void onProgress(const Progress& progress) = 0;
};

class Worker;
struct Console;

class LoadRun {
 public:
  // Does every fallible set-up step, so that a caller learns of a wrong target or a missing
  // resource before any thread starts or any load is sent: checks the settings (validate()),
  // creates the stop and done eventfds and each worker's epoll set, and with preflightConnect
  // waits up to config.timeout for the target to accept one connection. Returns the first
  // failure. The pool must outlive the run. On the heap because stop() may be called through a
  // pointer a signal handler holds, and the workers point into it.
  static Result<std::unique_ptr<LoadRun>> create(LoadConfig config, const MessagePool& pool);
  ~LoadRun();
  LoadRun(const LoadRun&) = delete;
  LoadRun& operator=(const LoadRun&) = delete;

  // Runs the whole test and returns its figures; blocks. Call once (a second call aborts). Fails
  // only when a thread cannot be started or a worker's epoll_wait fails: nothing about the
  // target or the settings, which create() has checked.
  Result<LoadReport> run(ProgressSink* sink);

  // Ends the run early; run() then returns what was measured, interrupted = true.
  // Thread-safe and async-signal-safe.
  void stop() noexcept;

 private:
  LoadRun(LoadConfig config, const MessagePool& pool);

  LoadConfig config_;
  const MessagePool& pool_;
  UniqueFd stopFd_;  // eventfd, readable once stop is wanted; in every worker's epoll set
  UniqueFd doneFd_;  // eventfd, counts the workers that have finished
  std::unique_ptr<Console> console_;  // shared by the workers
  std::unique_ptr<IntervalLog> intervals_;  // shared by the workers; made by create()
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> interrupted_{false};
  bool ran_ = false;
};

}  // namespace reverb::load
