// Sweep: the steps of a stepped run or a search, one LoadRun each (see sweep.h); and the parsers
// of --rate-steps, --ramp and --slo.
#include "load/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "load/worker.h"

namespace reverb::load {
namespace {

Error invalid(std::string why) {
  return makeError(std::errc::invalid_argument, std::move(why));
}

// A finite number that uses the whole of `text`, or nullopt.
std::optional<double> parseNumber(std::string_view text, size_t* used = nullptr) {
  std::string s(text);
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(v)) return std::nullopt;
  size_t n = static_cast<size_t>(end - s.c_str());
  if (used != nullptr) {
    *used = n;
  } else if (n != s.size()) {
    return std::nullopt;
  }
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t from = 0;
  for (;;) {
    size_t at = text.find(sep, from);
    parts.push_back(
        text.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
    if (at == std::string_view::npos) return parts;
    from = at + 1;
  }
}

// "5000", "5k", "1.5M": requests/s.
std::optional<double> parseRate(std::string_view text) {
  double scale = 1;
  if (!text.empty() && (text.back() == 'k' || text.back() == 'K')) {
    scale = 1e3;
    text.remove_suffix(1);
  } else if (!text.empty() && text.back() == 'M') {
    scale = 1e6;
    text.remove_suffix(1);
  }
  auto v = parseNumber(text);
  if (!v) return std::nullopt;
  return *v * scale;
}

// 4875.3 -> 4880: the search's rates read as what they are, a guess at 2%.
double roundRate(double rate) {
  if (rate <= 0) return rate;
  double magnitude = std::pow(10.0, std::floor(std::log10(rate)) - 2);
  return std::max(magnitude, std::round(rate / magnitude) * magnitude);
}

std::string trimNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::optional<std::chrono::nanoseconds> parseDuration(std::string_view text) {
  size_t used = 0;
  auto value = parseNumber(text, &used);
  if (!value) return std::nullopt;
  std::string_view unit = text.substr(used);
  double scale = 1e9;
  if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "us") {
    scale = 1e3;
  } else if (unit == "m") {
    scale = 60e9;
  } else if (!unit.empty() && unit != "s") {
    return std::nullopt;
  }
  if (!(*value >= 0)) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(*value * scale)));
}

std::string Objective::label() const {
  return "p" + trimNumber(percentile);
}

std::string Objective::jsonKey() const {
  // As report.cpp names the columns: p50, p90, p99, p999, p9999; any other percentile likewise.
  std::string key = "p" + trimNumber(percentile);
  key.erase(std::remove(key.begin(), key.end(), '.'), key.end());
  return key;
}

Result<Objective> parseObjective(std::string_view text) {
  const std::string usage = "--slo takes PERCENTILE=TIME, e.g. p99=1ms, p99.9=250us, p50=2.5ms";
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || text.empty() || (text[0] != 'p' && text[0] != 'P')) {
    return invalid(usage + "; got '" + std::string(text) + "'");
  }
  auto percentile = parseNumber(text.substr(1, eq - 1));
  if (!percentile || *percentile <= 0 || *percentile > 100) {
    return invalid("--slo: the percentile must be above 0 and at most 100 (" + usage + ")");
  }
  std::string_view time = text.substr(eq + 1);
  size_t used = 0;
  auto value = parseNumber(time, &used);
  std::string_view unit = value ? time.substr(used) : std::string_view{};
  struct UnitName {
    std::string_view name;
    double nanos;
    const char* shown;
  };
  static constexpr UnitName kUnits[] = {
      {"ns", 1, "ns"}, {"us", 1e3, "µs"}, {"µs", 1e3, "µs"}, {"ms", 1e6, "ms"}, {"s", 1e9, "s"}};
  const UnitName* found = nullptr;
  for (const auto& u : kUnits) {
    if (unit == u.name) found = &u;
  }
  if (!value || found == nullptr) {
    return invalid("--slo: the target needs a unit, ns, us, ms or s (" + usage + ")");
  }
  if (!(*value > 0)) return invalid("--slo: the target must be above 0");
  double nanos = *value * found->nanos;
  if (nanos < 1 || nanos > 3.6e12)
    return invalid("--slo: the target must be between 1 ns and an hour");
  Objective o;
  o.percentile = *percentile;
  o.targetNanos = static_cast<uint64_t>(std::llround(nanos));
  o.text = "p" + trimNumber(o.percentile) + " ≤ " + trimNumber(*value) + " " + found->shown;
  return o;
}

Result<std::vector<double>> parseRates(std::string_view text) {
  std::vector<double> rates;
  for (std::string_view part : split(text, ',')) {
    auto rate = parseRate(part);
    if (!rate || *rate <= 0) {
      return invalid(
          "--rate-steps takes rates above 0 separated by commas, e.g. 1000,2000,5k; got '" +
          std::string(part) + "'");
    }
    rates.push_back(*rate);
  }
  return rates;
}

Result<Ramp> parseRamp(std::string_view text) {
  const std::string usage = "--ramp takes START:END:STEP:SECONDS, e.g. 1000:10000:1000:5s";
  auto parts = split(text, ':');
  if (parts.size() != 4) return invalid(usage + "; got '" + std::string(text) + "'");
  auto start = parseRate(parts[0]);
  auto end = parseRate(parts[1]);
  auto step = parseRate(parts[2]);
  auto seconds = parseDuration(parts[3]);
  if (!start || !end || !step || *start <= 0 || *step <= 0 || *end < *start) {
    return invalid(usage + ": START, END and STEP above 0, END at least START");
  }
  if (!seconds || seconds->count() <= 0)
    return invalid(usage + ": SECONDS must be a positive duration");
  double count = std::floor((*end - *start) / *step + 1e-3) + 1;
  if (count > 1000) return invalid("--ramp: more than 1000 steps; use a larger STEP");
  Ramp ramp;
  ramp.stepDuration = *seconds;
  for (int i = 0; i < static_cast<int>(count); ++i) ramp.rates.push_back(*start + i * *step);
  return ramp;
}

std::string_view toString(StepKind kind) noexcept {
  switch (kind) {
    case StepKind::kStep:
      return "step";
    case StepKind::kSearch:
      return "search";
    case StepKind::kRecheck:
      return "recheck";
    case StepKind::kConfirm:
      return "confirm";
  }
  return "?";
}

bool meetsObjective(const LoadReport& report, double rate, const Objective& objective) noexcept {
  if (report.counters.requests == 0) return false;
  const double asked = rate * report.seconds;
  if (static_cast<double>(report.counters.requests) < kSustainedFraction * asked - 1) return false;
  return report.latency.valueAtPercentile(objective.percentile) <= objective.targetNanos;
}

RateSearch::RateSearch(double upperBound, bool boundIsEstimate, double resolution)
    : bound_(upperBound), estimate_(boundIsEstimate), resolution_(resolution) {}

std::optional<double> RateSearch::highestMetBelow(double rate) const {
  std::optional<double> best;
  for (double r : met_) {
    if (r < rate && (!best || r > *best)) best = r;
  }
  return best;
}

std::optional<double> RateSearch::lowestMissAbove(double rate) const {
  std::optional<double> best;
  for (double r : missed_) {
    if (r > rate && (!best || r < *best)) best = r;
  }
  return best;
}

std::optional<RateSearch::Probe> RateSearch::next() const {
  if (answer_ || exhausted_ || probes_ >= kMaxProbes || confirmations_ >= kMaxConfirmations)
    return std::nullopt;
  if (!lo_ && !hi_) return Probe{bound_, StepKind::kSearch};
  if (!lo_) {
    double rate = roundRate(*hi_ / 2);
    if (rate < bound_ / 1024 || rate >= *hi_) return std::nullopt;
    return Probe{rate, StepKind::kSearch};
  }
  if (!hi_) {
    // Everything tried met. A hard bound is the answer (once repeated); an estimate may be passed.
    if (!estimate_ || *lo_ >= 8 * bound_) return Probe{*lo_, StepKind::kConfirm};
    return Probe{roundRate(*lo_ * 1.5), StepKind::kSearch};
  }
  // A miss just overturned: the misses above it may be the same stall's; repeat the next first.
  if (overturned_ && !hiRechecked_) return Probe{*hi_, StepKind::kRecheck};
  const double mid = roundRate((*lo_ + *hi_) / 2);
  // Within the resolution (or the rounding grid): repeat the miss above, then the answer.
  if (*hi_ - *lo_ > resolution_ * *lo_ && mid > *lo_ && mid < *hi_)
    return Probe{mid, StepKind::kSearch};
  if (!hiRechecked_) return Probe{*hi_, StepKind::kRecheck};
  return Probe{*lo_, StepKind::kConfirm};
}

void RateSearch::record(const Probe& probe, bool met) {
  ++probes_;
  overturned_ = probe.kind == StepKind::kRecheck && met;
  switch (probe.kind) {
    case StepKind::kConfirm:
      ++confirmations_;
      if (met) {
        answer_ = probe.rate;
        return;
      }
      // The rate met, then missed: not sustained. It counts as a miss seen twice; search below.
      std::erase_if(met_, [&](double r) { return r >= probe.rate; });
      missed_.push_back(probe.rate);
      hi_ = probe.rate;
      hiRechecked_ = true;
      lo_ = highestMetBelow(probe.rate);
      return;
    case StepKind::kRecheck:
      if (!met) {
        hiRechecked_ = true;
        return;
      }
      // The miss was noise: the rate counts as met, and the search goes on above it.
      std::erase_if(missed_, [&](double r) { return r <= probe.rate; });
      met_.push_back(probe.rate);
      lo_ = probe.rate;
      hi_ = lowestMissAbove(probe.rate);
      hiRechecked_ = false;
      return;
    case StepKind::kStep:
    case StepKind::kSearch:
      break;
  }
  if (met) {
    met_.push_back(probe.rate);
    if (!lo_ || probe.rate > *lo_) lo_ = probe.rate;
  } else {
    missed_.push_back(probe.rate);
    if (!hi_ || probe.rate < *hi_) {
      hi_ = probe.rate;
      hiRechecked_ = false;
    }
    if (!lo_ && roundRate(*hi_ / 2) < bound_ / 1024) exhausted_ = true;
  }
}

LatencyFigures LatencyFigures::of(const Histogram& h, double objectivePercentile) {
  LatencyFigures f;
  f.count = h.count();
  f.min = h.min();
  f.max = h.max();
  f.mean = h.mean();
  f.p50 = h.valueAtPercentile(50);
  f.p90 = h.valueAtPercentile(90);
  f.p99 = h.valueAtPercentile(99);
  f.p999 = h.valueAtPercentile(99.9);
  f.p9999 = h.valueAtPercentile(99.99);
  f.objective = h.valueAtPercentile(objectivePercentile);
  return f;
}

HistogramCounts HistogramCounts::of(const Histogram& h) {
  HistogramCounts c;
  c.significantDigits = h.significantDigits();
  c.highestTrackable = h.highestTrackable();
  c.count = h.count();
  c.min = h.min();
  c.max = h.max();
  h.forEachCount([&](uint64_t lowest, uint64_t, uint64_t n) { c.ranges.emplace_back(lowest, n); });
  return c;
}

StepReport StepReport::of(const LoadReport& r, double objectivePercentile) {
  StepReport s;
  s.seconds = r.seconds;
  s.counters = r.counters;
  s.backlogAtEnd = r.backlogAtEnd;
  s.interrupted = r.interrupted;
  s.openLoop = r.openLoop;
  s.series = r.series;
  s.latency = LatencyFigures::of(r.latency, objectivePercentile);
  s.latencyUncorrected = LatencyFigures::of(r.latencyUncorrected, objectivePercentile);
  s.sendDelay = LatencyFigures::of(r.sendDelay, objectivePercentile);
  s.latencyCounts = HistogramCounts::of(r.latency);
  return s;
}

Sweep::Sweep(LoadConfig base, const MessagePool& pool, SweepObserver* observer)
    : base_(std::move(base)), pool_(pool), observer_(observer) {}

void Sweep::stop() noexcept {
  stopped_.store(true, std::memory_order_relaxed);
  LoadRun* run = current_.load(std::memory_order_acquire);
  if (run != nullptr) run->stop();
}

Result<LoadReport> Sweep::runOne(double rate) {
  LoadConfig config = base_;
  config.rate = rate;
  auto created = LoadRun::create(config, pool_);
  if (!created) return created.error();
  std::unique_ptr<LoadRun> run = std::move(*created);
  current_.store(run.get(), std::memory_order_release);
  // A stop that came before the store above found no run to stop: honour it here.
  if (stopped_.load(std::memory_order_relaxed)) run->stop();
  auto report = run->run(observer_ != nullptr ? observer_->progress() : nullptr);
  current_.store(nullptr, std::memory_order_release);
  return report;
}

void Sweep::addStep(SweepReport& sweep, StepKind kind, double rate, const LoadReport& report,
                    std::optional<bool> meets) {
  const double percentile = sweep.search ? sweep.search->objective.percentile : 99.0;
  StepReport step = StepReport::of(report, percentile);
  step.index = static_cast<int>(sweep.steps.size()) + 1;
  step.kind = kind;
  step.rate = rate;
  step.startedAt = static_cast<double>(startedAt_) / 1e9;
  step.meets = meets;
  sweep.whole.add(report);
  sweep.interrupted = sweep.interrupted || step.interrupted;
  sweep.steps.push_back(std::move(step));
  if (observer_ != nullptr) observer_->onStepEnd(sweep.steps.back());
}

SweepReport Sweep::runSteps(const std::vector<double>& rates) {
  SweepReport sweep;
  const Nanos origin = monotonicNow();
  for (double rate : rates) {
    if (stopped_.load(std::memory_order_relaxed)) break;
    startedAt_ = monotonicNow() - origin;
    if (observer_ != nullptr)
      observer_->onRunStart(static_cast<int>(sweep.steps.size()) + 1, StepKind::kStep, rate);
    auto report = runOne(rate);
    if (!report) {
      sweep.failure = report.error();
      break;
    }
    addStep(sweep, StepKind::kStep, rate, *report, std::nullopt);
  }
  sweep.interrupted = sweep.interrupted || stopped_.load(std::memory_order_relaxed);
  return sweep;
}

SweepReport Sweep::search(const Objective& objective, double upperBound) {
  SweepReport sweep;
  SearchReport& s = sweep.search.emplace();
  s.objective = objective;
  s.upperBound = upperBound;
  const Nanos origin = monotonicNow();
  if (upperBound <= 0) {
    s.boundFromProbe = true;
    if (observer_ != nullptr) observer_->onRunStart(0, StepKind::kSearch, 0);
    auto probe = runOne(0);
    if (!probe) {
      sweep.failure = probe.error();
      return sweep;
    }
    s.upperBound = probe->requestsPerSecond();
    s.probe = std::move(*probe);
    sweep.interrupted = s.probe->interrupted;
    if (s.upperBound <= 0 || sweep.interrupted) return sweep;
  }
  RateSearch search(s.upperBound, s.boundFromProbe, s.resolution);
  while (auto probe = search.next()) {
    if (stopped_.load(std::memory_order_relaxed)) break;
    const StepKind kind = probe->kind;
    startedAt_ = monotonicNow() - origin;
    if (observer_ != nullptr)
      observer_->onRunStart(static_cast<int>(sweep.steps.size()) + 1, kind, probe->rate);
    auto report = runOne(probe->rate);
    if (!report) {
      sweep.failure = report.error();
      break;
    }
    const bool met = meetsObjective(*report, probe->rate, objective);
    addStep(sweep, kind, probe->rate, *report, met);
    if (sweep.steps.back().interrupted) break;
    search.record(*probe, met);
  }
  sweep.interrupted = sweep.interrupted || stopped_.load(std::memory_order_relaxed);
  s.maxRate = search.answer();
  // The steps that support the answer: the last run that met at it before its repeat, the last
  // that missed at the lowest missing rate above it, and the repeat run that confirmed it.
  for (const StepReport& step : sweep.steps) {
    if (s.maxRate && step.rate == *s.maxRate && step.meets.value_or(false)) {
      (step.kind == StepKind::kConfirm ? s.confirmStep : s.metStep) = step.index;
    }
    if (s.maxRate && search.lowestMiss() && step.rate == *search.lowestMiss() &&
        !step.meets.value_or(true)) {
      s.missedStep = step.index;
    }
  }
  return sweep;
}

}  // namespace reverb::load
