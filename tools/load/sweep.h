// Sweep: open-loop runs at several rates, for latency under rising load: fixed steps
// (--rate-steps, --ramp), or a search for the highest rate whose corrected latency percentile
// meets an objective (--slo), confirmed by a repeat run at the answer.
//
// Each step is a LoadRun of its own (same settings, its own rate): fresh connections, its own
// warmup, a schedule that starts empty. So a step that overloaded the server hands no backlog to
// the next (a search goes down after a miss), and each step's figures, histograms and time series
// are exactly its window's; LoadReport::add() sums them into the whole run's.
// Ownership: borrows the MessagePool and the observer; owns the LoadRun in progress.
// Threading: run*() and search() on one thread; stop() from any thread or a signal handler.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "load/load_run.h"
#include "load/payload.h"

namespace reverb::load {

// A latency objective: the corrected `percentile` at most `targetNanos`.
struct Objective {
  double percentile = 99;
  uint64_t targetNanos = 0;
  std::string text;  // "p99 ≤ 1 ms", as the report says it

  std::string label() const;    // "p99", "p99.9"
  std::string jsonKey() const;  // the key latency_us uses for it: "p99", "p999"
};

// "p99=1ms", "p99.9=250us", "p50=2.5ms", "p100=1s" (p100: the maximum). Units ns, us (or µs), ms,
// s; the percentile is above 0 and at most 100, the target above 0. Returns an error sentence.
Result<Objective> parseObjective(std::string_view text);

// "1000,2500,5k,1.5M": rates in requests/s, each above 0 (k = 1e3, M = 1e6).
Result<std::vector<double>> parseRates(std::string_view text);

// "START:END:STEP:SECONDS": START, START + STEP, ... up to END (END itself when it falls on the
// grid, within a thousandth of STEP); SECONDS is each step's measured window ("5", "2.5s",
// "500ms"). START, END and STEP above 0, END at least START.
struct Ramp {
  std::vector<double> rates;
  std::chrono::nanoseconds stepDuration{0};
};
Result<Ramp> parseRamp(std::string_view text);

// "10", "2.5", "10s", "500ms", "250us", "2m": a duration, not negative; nullopt if malformed.
std::optional<std::chrono::nanoseconds> parseDuration(std::string_view text);

enum class StepKind : uint8_t {
  kStep,     // one of the rates asked for (--rate-steps, --ramp)
  kSearch,   // a rate the search tried
  kRecheck,  // the search's repeat run at the lowest rate that missed
  kConfirm,  // the search's repeat run at its answer
};
std::string_view toString(StepKind kind) noexcept;

// A step at which the server keeps up: it completed at least this fraction of the requests its
// rate asks for over the window (less one, for rounding). Below that, requests were left waiting
// or unsent, and the latency of those that did complete says too little.
inline constexpr double kSustainedFraction = 0.9;

// True when the step kept up (kSustainedFraction) and its corrected latency at the objective's
// percentile is at most the target. A step without any completed request never meets it.
bool meetsObjective(const LoadReport& report, double rate, const Objective& objective) noexcept;

// RateSearch: which rate to try next, from the verdicts so far; pure, so it is tested without a
// server. It looks for the highest rate that meets the objective up to a relative resolution:
//   1. the upper bound first; if it misses, halve until a rate meets (or the rate falls below a
//      thousandth of the bound: nothing meets it);
//   2. if the bound is an estimate (a closed-loop probe) and it meets, grow by half until a miss
//      (at most to 8x the bound); a hard bound (--rate) that meets is the answer;
//   3. bisect between the highest rate that met and the lowest that missed until they are within
//      `resolution` of each other;
//   4. repeat the lowest rate that missed (kRecheck): a miss can be noise (a machine that stalled
//      the client for a moment), never the other way round, so one that meets on the repeat
//      counts as met and the search goes on above it, repeating the next miss above first (a
//      stall often spans several runs);
//   5. repeat the highest rate that met (kConfirm): the answer if it meets again; if not, it
//      counts as a miss and the search goes on below it.
// So an answer is a rate that met twice (or met, missed, and met again), and the rate above it
// missed twice. Rates it proposes are rounded to 3 significant digits, except the bound itself.
// At most kMaxProbes runs in all, kMaxConfirmations repeat runs of an answer. Threading: any one
// thread at a time.
class RateSearch {
 public:
  static constexpr double kDefaultResolution = 0.02;
  static constexpr int kMaxProbes = 24;
  static constexpr int kMaxConfirmations = 6;

  struct Probe {
    double rate = 0;
    StepKind kind = StepKind::kSearch;  // kSearch, kRecheck or kConfirm
  };

  RateSearch(double upperBound, bool boundIsEstimate, double resolution = kDefaultResolution);

  // The next run to make, or nullopt when the search is over.
  std::optional<Probe> next() const;
  // The verdict of the run next() proposed.
  void record(const Probe& probe, bool met);

  // The confirmed answer, once the search is over; nullopt when no rate was confirmed.
  std::optional<double> answer() const { return answer_; }
  // The lowest rate that missed above the answer (nullopt: none, e.g. a hard bound that met).
  std::optional<double> lowestMiss() const { return hi_; }
  int probes() const noexcept { return probes_; }

 private:
  std::optional<double> highestMetBelow(double rate) const;
  std::optional<double> lowestMissAbove(double rate) const;

  double bound_;
  bool estimate_;
  double resolution_;
  std::optional<double> lo_;    // highest rate that met (not disproved by a failed confirmation)
  std::optional<double> hi_;    // lowest rate that missed (not overturned by a recheck)
  bool hiRechecked_ = false;    // hi_ missed on its repeat run too
  bool overturned_ = false;     // the last run was a repeat that overturned a miss
  std::vector<double> met_;     // rates that met and still count
  std::vector<double> missed_;  // rates that missed and still count
  std::optional<double> answer_;
  int probes_ = 0;
  int confirmations_ = 0;
  bool exhausted_ = false;  // nothing meets above a thousandth of the bound
};

// What a step keeps of one of its latency histograms: the figures its table row and its JSON
// print (nanoseconds). A dense Histogram is about 270 KB; a sweep keeps every step, so it keeps
// these instead, and the whole run's merged histograms.
struct LatencyFigures {
  uint64_t count = 0;
  uint64_t min = 0;
  uint64_t max = 0;
  double mean = 0;
  uint64_t p50 = 0;
  uint64_t p90 = 0;
  uint64_t p99 = 0;
  uint64_t p999 = 0;
  uint64_t p9999 = 0;
  uint64_t objective = 0;  // at the search objective's percentile (p99 outside a search)

  static LatencyFigures of(const Histogram& h, double objectivePercentile);
};

// A histogram as its non-empty count ranges (Histogram::forEachCount), with its layout and exact
// extremes: what --json writes so that a reader can merge steps (Histogram::recordCount).
struct HistogramCounts {
  int significantDigits = 0;
  uint64_t highestTrackable = 0;
  uint64_t count = 0;
  uint64_t min = 0;
  uint64_t max = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // lowest value of the range, count

  static HistogramCounts of(const Histogram& h);
};

struct StepReport {
  int index = 0;  // 1-based, in the order the steps ran
  StepKind kind = StepKind::kStep;
  double rate = 0;            // asked, requests/s
  double startedAt = 0;       // seconds from the sweep's start to this step's
  std::optional<bool> meets;  // search: the verdict against the objective
  // The step's run, as LoadReport has it, less the dense histograms.
  double seconds = 0;
  LoadCounters counters;
  uint64_t backlogAtEnd = 0;
  bool interrupted = false;
  bool openLoop = false;
  std::vector<IntervalFigures> series;
  LatencyFigures latency;  // corrected
  LatencyFigures latencyUncorrected;
  LatencyFigures sendDelay;
  HistogramCounts latencyCounts;  // the corrected latency histogram, mergeable

  // The figures of a step's run; objectivePercentile fills LatencyFigures::objective.
  static StepReport of(const LoadReport& report, double objectivePercentile);
  double requestsPerSecond() const noexcept {
    return seconds > 0 ? static_cast<double>(counters.requests) / seconds : 0;
  }
};

struct SearchReport {
  Objective objective;
  double upperBound = 0;
  bool boundFromProbe = false;      // the closed-loop probe set it (else --rate)
  std::optional<LoadReport> probe;  // the closed-loop probe, when there was one
  std::optional<double> maxRate;    // the confirmed answer
  std::optional<int> metStep;       // the search step that met at the answer
  std::optional<int> missedStep;    // the step that missed at the lowest missing rate above it
  std::optional<int> confirmStep;   // the repeat run that confirmed it
  double resolution = RateSearch::kDefaultResolution;
};

struct SweepReport {
  std::vector<StepReport> steps;
  LoadReport whole;  // every step added up (LoadReport::add); the probe is not a step
  std::optional<SearchReport> search;
  std::optional<Error>
      failure;  // a step could not start (the target went away...): later steps did not run
  bool interrupted = false;  // stop() ended it early
};

// What a Sweep tells its caller as it goes (reverb-load prints a line per step).
class SweepObserver {
 public:
  virtual ~SweepObserver() = default;
  // Before each run: a step (kind, its 1-based index and rate), or the closed-loop probe (rate 0,
  // index 0).
  virtual void onRunStart(int index, StepKind kind, double rate) = 0;
  // After a step has run.
  virtual void onStepEnd(const StepReport& step) = 0;
  // Progress lines during each run; null for none.
  virtual ProgressSink* progress() = 0;
};

class Sweep {
 public:
  // `base`: the settings of every run (its rate is replaced by each step's); requests mode, timed
  // by duration. The pool and the observer (which may be null) must outlive the sweep.
  Sweep(LoadConfig base, const MessagePool& pool, SweepObserver* observer);

  // One open-loop step per rate, in order.
  SweepReport runSteps(const std::vector<double>& rates);

  // The search (RateSearch) up to `upperBound` requests/s; with upperBound 0, a closed-loop run
  // with the same settings first, whose requests/s is the bound (an estimate the search may pass).
  SweepReport search(const Objective& objective, double upperBound);

  // Ends the step in progress early and runs no more. Thread-safe and async-signal-safe.
  void stop() noexcept;

 private:
  // One LoadRun at `rate` (0: closed loop); the error when it could not be made or run.
  Result<LoadReport> runOne(double rate);
  void addStep(SweepReport& sweep, StepKind kind, double rate, const LoadReport& report,
               std::optional<bool> meets);

  LoadConfig base_;
  const MessagePool& pool_;
  SweepObserver* observer_;
  int64_t startedAt_ = 0;
  std::atomic<LoadRun*> current_{nullptr};
  std::atomic<bool> stopped_{false};
};

}  // namespace reverb::load
