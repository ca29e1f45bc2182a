// The pure parts of latency under rising load: the --slo, --rate-steps and --ramp parsers, the
// verdict of a step, the rate search against simulated servers of known capacity, the time series
// log (IntervalLog) and the sum of steps (LoadReport::add), and the report of a sweep.
#include "load/sweep.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "load/interval_log.h"
#include "load/report.h"
#include "support/json_value.h"

namespace reverb::load {
namespace {

using reverb::testing::JsonValue;
using reverb::testing::parseJson;

TEST(SweepParseTest, ObjectivesTakeAnyPercentileAndTimeUnit) {
  auto o = parseObjective("p99=1ms");
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(o->percentile, 99);
  EXPECT_EQ(o->targetNanos, 1'000'000u);
  EXPECT_EQ(o->text, "p99 ≤ 1 ms");
  EXPECT_EQ(o->jsonKey(), "p99");
  o = parseObjective("p99.9=250us");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->percentile, 99.9);
  EXPECT_EQ(o->targetNanos, 250'000u);
  EXPECT_EQ(o->text, "p99.9 ≤ 250 µs");
  EXPECT_EQ(o->label(), "p99.9");
  EXPECT_EQ(o->jsonKey(), "p999");
  o = parseObjective("p50=2.5ms");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->targetNanos, 2'500'000u);
  o = parseObjective("p99.99=1s");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->targetNanos, 1'000'000'000u);
  EXPECT_EQ(o->jsonKey(), "p9999");
  o = parseObjective("p100=800ns");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->targetNanos, 800u);
  o = parseObjective("p90=40µs");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->targetNanos, 40'000u);
  for (const char* bad :
       {"", "99=1ms", "p99", "p99=", "p99=1", "p99=1h", "p0=1ms", "p101=1ms", "p-5=1ms", "p99=0ms",
        "p99=-1ms", "pxx=1ms", "p99=ms", "p99=1ms ", "p99=2h"}) {
    auto r = parseObjective(bad);
    EXPECT_FALSE(r) << "'" << bad << "' was accepted";
    if (!r) {
      EXPECT_NE(r.error().context.find("--slo"), std::string::npos) << r.error().context;
    }
  }
}

TEST(SweepParseTest, RateStepsAreCommaSeparatedPositiveRates) {
  auto r = parseRates("1000,2500,5k,1.5M");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (std::vector<double>{1000, 2500, 5000, 1.5e6}));
  r = parseRates("42");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::vector<double>{42});
  for (const char* bad : {"", "1000,,2000", "0", "-5", "1000,abc", "5x", ",1000", "1000,"}) {
    EXPECT_FALSE(parseRates(bad)) << "'" << bad << "' was accepted";
  }
}

TEST(SweepParseTest, RampListsItsStepsUpToTheEnd) {
  auto r = parseRamp("1000:5000:1000:2s");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->rates, (std::vector<double>{1000, 2000, 3000, 4000, 5000}));
  EXPECT_EQ(r->stepDuration, std::chrono::seconds(2));
  // END off the grid: the last step is the one below it.
  r = parseRamp("1k:4500:1k:500ms");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rates, (std::vector<double>{1000, 2000, 3000, 4000}));
  EXPECT_EQ(r->stepDuration, std::chrono::milliseconds(500));
  // A step that does not divide exactly in binary still reaches END.
  r = parseRamp("0.1:0.7:0.1:1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rates.size(), 7u);
  r = parseRamp("300:300:100:1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rates, std::vector<double>{300});
  for (const char* bad :
       {"", "1000:5000:1000", "1000:5000:1000:2s:9", "5000:1000:1000:2s", "1000:5000:0:2s",
        "0:5000:1000:2s", "1000:5000:1000:0s", "1000:5000:1000:2h", "a:b:c:d", "1:100000:1:1s"}) {
    EXPECT_FALSE(parseRamp(bad)) << "'" << bad << "' was accepted";
  }
}

TEST(SweepParseTest, Durations) {
  EXPECT_EQ(parseDuration("10"), std::chrono::seconds(10));
  EXPECT_EQ(parseDuration("2.5s"), std::chrono::milliseconds(2500));
  EXPECT_EQ(parseDuration("500ms"), std::chrono::milliseconds(500));
  EXPECT_EQ(parseDuration("250us"), std::chrono::microseconds(250));
  EXPECT_EQ(parseDuration("2m"), std::chrono::minutes(2));
  EXPECT_EQ(parseDuration("0"), std::chrono::nanoseconds(0));
  for (const char* bad : {"", "-1", "1h", "s", "1 s", "nan"})
    EXPECT_FALSE(parseDuration(bad)) << bad;
}

// A report of `requests` requests over `seconds`, all with latency `nanos`.
LoadReport stepReport(double seconds, uint64_t requests, uint64_t nanos) {
  LoadReport r;
  r.seconds = seconds;
  r.openLoop = true;
  r.counters.requests = requests;
  for (uint64_t i = 0; i < requests; ++i) r.latency.record(nanos);
  return r;
}

TEST(SweepVerdictTest, AStepMeetsTheObjectiveWhenItKeptUpAndItsPercentileIsUnderTheTarget) {
  const Objective p99 = *parseObjective("p99=1ms");
  EXPECT_TRUE(meetsObjective(stepReport(2, 2000, 900'000), 1000, p99));
  EXPECT_TRUE(meetsObjective(stepReport(2, 2000, 1'000'000), 1000, p99));  // at most the target
  EXPECT_FALSE(meetsObjective(stepReport(2, 2000, 1'100'000), 1000, p99));
  // 90% of the asked requests (less one) still kept up; fewer did not, whatever their latency.
  EXPECT_TRUE(meetsObjective(stepReport(2, 1799, 10'000), 1000, p99));
  EXPECT_FALSE(meetsObjective(stepReport(2, 1798, 10'000), 1000, p99));
  EXPECT_FALSE(meetsObjective(stepReport(2, 0, 0), 1000, p99));
  // The percentile is the objective's: 2% slow requests fail p99 but not p90.
  LoadReport mixed = stepReport(1, 980, 100'000);
  for (int i = 0; i < 20; ++i) mixed.latency.record(5'000'000);
  mixed.counters.requests = 1000;
  EXPECT_FALSE(meetsObjective(mixed, 1000, p99));
  EXPECT_TRUE(meetsObjective(mixed, 1000, *parseObjective("p90=1ms")));
}

// Runs a RateSearch to its end against `met`; returns the rates it tried, in order.
std::vector<RateSearch::Probe> runSearch(RateSearch& search,
                                         const std::function<bool(double, int)>& met) {
  std::vector<RateSearch::Probe> tried;
  while (auto probe = search.next()) {
    tried.push_back(*probe);
    search.record(*probe, met(probe->rate, static_cast<int>(tried.size())));
  }
  return tried;
}

TEST(RateSearchTest, FindsTheCapacityOfAServerWithinTheResolution) {
  // A server meets the objective up to its capacity; the bound is a closed-loop estimate above it.
  for (double capacity : {1000.0, 4321.0, 9999.0, 60'000.0}) {
    SCOPED_TRACE(capacity);
    RateSearch search(capacity * 1.1, true);
    auto tried = runSearch(search, [&](double rate, int) { return rate <= capacity; });
    ASSERT_TRUE(search.answer());
    EXPECT_LE(*search.answer(), capacity);
    EXPECT_GE(*search.answer(), capacity * (1 - RateSearch::kDefaultResolution) * 0.99);
    ASSERT_TRUE(search.lowestMiss());
    EXPECT_GT(*search.lowestMiss(), capacity);
    EXPECT_LE(*search.lowestMiss() - *search.answer(), 0.021 * *search.answer());
    EXPECT_EQ(tried.back().kind, StepKind::kConfirm);
    EXPECT_EQ(tried[tried.size() - 2].kind, StepKind::kRecheck);
    EXPECT_EQ(tried[tried.size() - 2].rate, *search.lowestMiss());
    EXPECT_EQ(tried.back().rate, *search.answer());
    EXPECT_EQ(tried.front().rate, capacity * 1.1);  // the bound itself, not rounded
    EXPECT_LE(tried.size(), 12u);
  }
}

TEST(RateSearchTest, AnEstimatedBoundThatMeetsIsPassed) {
  // The closed-loop probe came out low (a noisy machine): the search grows past it.
  RateSearch search(1000, true);
  auto tried = runSearch(search, [](double rate, int) { return rate <= 3000; });
  ASSERT_TRUE(search.answer());
  EXPECT_GT(*search.answer(), 2900);
  EXPECT_LE(*search.answer(), 3000);
  EXPECT_EQ(tried[1].rate, 1500);
  EXPECT_EQ(tried[2].rate, 2250);
}

TEST(RateSearchTest, AHardBoundThatMeetsIsTheAnswer) {
  // --rate 5000: nothing above it is tried.
  RateSearch search(5000, false);
  auto tried = runSearch(search, [](double, int) { return true; });
  ASSERT_EQ(tried.size(), 2u);
  EXPECT_EQ(tried[0].kind, StepKind::kSearch);
  EXPECT_EQ(tried[1].kind, StepKind::kConfirm);
  EXPECT_EQ(search.answer(), 5000);
  EXPECT_FALSE(search.lowestMiss());
}

TEST(RateSearchTest, AFailedRepeatRunSendsTheSearchBelowIt) {
  // The answer met once by luck: its repeat run misses, so the search goes on below it.
  const double capacity = 2000;
  RateSearch search(4000, true);
  bool fooled = false;
  auto tried = runSearch(search, [&](double rate, int) {
    if (!fooled && rate > capacity && rate < 2200) {
      fooled = true;
      return true;
    }
    return rate <= capacity;
  });
  ASSERT_TRUE(fooled);
  ASSERT_TRUE(search.answer());
  EXPECT_LE(*search.answer(), capacity);
  EXPECT_GE(*search.answer(), capacity * 0.97);
  int confirmations = 0;
  for (const auto& p : tried) confirmations += p.kind == StepKind::kConfirm ? 1 : 0;
  EXPECT_EQ(confirmations, 2);
}

TEST(RateSearchTest, AMissThatWasNoiseIsRepeatedAndOverturned) {
  // A stall made one rate well under capacity miss: the repeat run of the lowest miss meets, and
  // the search goes on above it to the real capacity.
  const double capacity = 3000;
  RateSearch search(4000, true);
  bool stalled = false;
  auto tried = runSearch(search, [&](double rate, int) {
    if (!stalled && rate > 1900 && rate < capacity) {
      stalled = true;
      return false;
    }
    return rate <= capacity;
  });
  ASSERT_TRUE(stalled);
  ASSERT_TRUE(search.answer());
  EXPECT_LE(*search.answer(), capacity);
  EXPECT_GE(*search.answer(), capacity * 0.97);
  int rechecks = 0;
  for (const auto& p : tried) rechecks += p.kind == StepKind::kRecheck ? 1 : 0;
  // The stalled rate (it meets), the miss above it (the bound: it misses again) and, once the
  // bisection is done, the real lowest miss.
  EXPECT_EQ(rechecks, 3);
  EXPECT_LE(static_cast<int>(tried.size()), 20);
}

TEST(RateSearchTest, AStallOverSeveralRunsIsClimbedOutOf) {
  // The machine stalled the client for runs 2 to 5: each missed whatever its rate. The repeat runs
  // overturn those misses one after another, and the search still ends at the capacity.
  const double capacity = 3000;
  RateSearch search(3300, true);
  auto tried = runSearch(search, [&](double rate, int run) {
    if (run >= 2 && run <= 5) return false;
    return rate <= capacity;
  });
  ASSERT_TRUE(search.answer());
  EXPECT_LE(*search.answer(), capacity);
  EXPECT_GE(*search.answer(), capacity * 0.97);
  EXPECT_LE(static_cast<int>(tried.size()), RateSearch::kMaxProbes);
}

TEST(RateSearchTest, NothingMeetsTheObjective) {
  RateSearch search(10'000, true);
  auto tried = runSearch(search, [](double, int) { return false; });
  EXPECT_FALSE(search.answer());
  EXPECT_LE(tried.size(), 12u);
  EXPECT_GE(tried.back().rate, 10'000.0 / 1024);
  EXPECT_LT(tried.back().rate, 10'000.0 / 512);
}

TEST(RateSearchTest, ANoisyServerNeverRunsPastTheProbeLimit) {
  // Verdicts at random: the search ends within its limits, and any answer it gives was met twice.
  uint64_t state = 12345;
  RateSearch search(50'000, true);
  std::vector<std::pair<double, bool>> verdicts;
  auto tried = runSearch(search, [&](double rate, int) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    bool met = (state >> 33) % 2 == 0;
    verdicts.emplace_back(rate, met);
    return met;
  });
  EXPECT_LE(static_cast<int>(tried.size()), RateSearch::kMaxProbes);
  if (search.answer()) {
    EXPECT_TRUE(verdicts.back().second);
    EXPECT_EQ(verdicts.back().first, *search.answer());
  }
}

TEST(IntervalLogTest, SharesOfEveryThreadAddUpPerInterval) {
  IntervalLog log(2, 1'000'000'000);
  Histogram a;
  Histogram b;
  for (int i = 0; i < 10; ++i) a.record(1000 * (i + 1));
  b.record(50'000);
  log.add(0, IntervalShare{10, 1, 0}, &a);
  log.add(0, IntervalShare{1, 0, 2}, &b);
  // Thread 1 slept through interval 1 (an empty share), thread 2 recorded in it.
  log.add(1, IntervalShare{}, nullptr);
  log.add(1, IntervalShare{5, 0, 0}, &a);
  // Thread 1 ends after interval 2; thread 2 hands in interval 2 and retires.
  log.add(2, IntervalShare{3, 0, 0}, &b);
  log.retire(2, true);
  log.retire(1, true);
  auto series = log.finish(2.5);
  ASSERT_EQ(series.size(), 3u);
  EXPECT_EQ(series[0].requests, 11u);
  EXPECT_EQ(series[0].errors, 1u);
  EXPECT_EQ(series[0].mismatches, 2u);
  EXPECT_EQ(series[0].maxNanos, 50'000u);
  // The 6th of 11 (1000..10000 and 50000), as the histogram reports it: its range's highest value.
  EXPECT_EQ(series[0].p50Nanos, Histogram().highestEquivalent(6000));
  EXPECT_EQ(series[1].requests, 5u);
  EXPECT_EQ(series[1].maxNanos, 10'000u);
  EXPECT_EQ(series[2].requests, 3u);
  EXPECT_EQ(series[2].start, 2.0);
  EXPECT_EQ(series[2].seconds, 0.5);  // the window's last interval is shorter
  EXPECT_EQ(series[2].requestsPerSecond(), 6.0);
  EXPECT_EQ(series[1].requestsPerSecond(), 5.0);
}

TEST(IntervalLogTest, IntervalsNobodyRecordedInAreZeros) {
  IntervalLog log(1, 500'000'000);
  Histogram h;
  h.record(7);
  log.add(3, IntervalShare{1, 0, 0}, &h);
  log.retire(3, true);
  auto series = log.finish(1.9);
  ASSERT_EQ(series.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(series[i].requests, 0u);
    EXPECT_EQ(series[i].maxNanos, 0u);
    EXPECT_EQ(series[i].seconds, 0.5);
  }
  EXPECT_EQ(series[3].requests, 1u);
  EXPECT_NEAR(series[3].seconds, 0.4, 1e-9);
  // A window that never opened has no intervals.
  IntervalLog empty(2, 1'000'000'000);
  empty.retire(0, false);
  empty.retire(0, false);
  EXPECT_TRUE(empty.finish(0).empty());
}

TEST(LoadReportAddTest, StepsAddUpToTheWholeRun) {
  LoadReport first = stepReport(2, 2000, 100'000);
  first.machineBusy = 0.5;
  first.counters.errors[0] = 1;
  first.series = {IntervalFigures{0, 1, 1000, 1, 0, 1, 2, 3},
                  IntervalFigures{1, 1, 1000, 0, 0, 1, 2, 3}};
  LoadReport second = stepReport(1, 3000, 200'000);
  second.machineBusy = 1.0;
  second.counters.mismatches = 2;
  second.backlogAtEnd = 7;
  second.series = {IntervalFigures{0, 1, 3000, 0, 2, 4, 5, 6}};
  LoadReport whole;
  whole.add(first);
  whole.add(second);
  EXPECT_EQ(whole.seconds, 3);
  EXPECT_EQ(whole.counters.requests, 5000u);
  EXPECT_EQ(whole.counters.errorTotal(), 1u);
  EXPECT_EQ(whole.counters.mismatches, 2u);
  EXPECT_EQ(whole.backlogAtEnd, 7u);
  EXPECT_EQ(whole.latency.count(), 5000u);
  EXPECT_EQ(whole.latency.max(), 200'000u);
  ASSERT_TRUE(whole.machineBusy);
  EXPECT_NEAR(*whole.machineBusy, (0.5 * 2 + 1.0 * 1) / 3, 1e-12);
  ASSERT_EQ(whole.series.size(), 3u);
  EXPECT_EQ(whole.series[2].start, 2);  // the second step's interval follows the first's window
  EXPECT_EQ(whole.requestsPerSecond(), 5000.0 / 3);
  EXPECT_TRUE(whole.openLoop);
}

TEST(StepReportTest, AStepKeepsItsHistogramsFiguresAndCountRanges) {
  LoadReport r = stepReport(2, 0, 0);
  for (uint64_t v = 1000; v <= 100'000; v += 7) r.latency.record(v);
  for (uint64_t v = 500; v <= 50'000; v += 7) r.latencyUncorrected.record(v);
  r.counters.requests = r.latency.count();
  r.backlogAtEnd = 3;
  r.series = {IntervalFigures{0, 1, 5, 0, 0, 1, 2, 3}};
  StepReport s = StepReport::of(r, 99.5);
  EXPECT_EQ(s.seconds, 2);
  EXPECT_EQ(s.counters.requests, r.latency.count());
  EXPECT_EQ(s.requestsPerSecond(), r.requestsPerSecond());
  EXPECT_EQ(s.backlogAtEnd, 3u);
  EXPECT_EQ(s.series.size(), 1u);
  EXPECT_EQ(s.latency.p50, r.latency.valueAtPercentile(50));
  EXPECT_EQ(s.latency.p999, r.latency.valueAtPercentile(99.9));
  EXPECT_EQ(s.latency.p9999, r.latency.valueAtPercentile(99.99));
  EXPECT_EQ(s.latency.objective, r.latency.valueAtPercentile(99.5));
  EXPECT_EQ(s.latency.max, r.latency.max());
  EXPECT_EQ(s.latency.mean, r.latency.mean());
  EXPECT_EQ(s.latencyUncorrected.p99, r.latencyUncorrected.valueAtPercentile(99));
  EXPECT_EQ(s.sendDelay.count, 0u);
  // The count ranges rebuild the same histogram.
  EXPECT_EQ(s.latencyCounts.count, r.latency.count());
  EXPECT_EQ(s.latencyCounts.max, r.latency.max());
  Histogram rebuilt(s.latencyCounts.highestTrackable, s.latencyCounts.significantDigits);
  for (auto [lowest, count] : s.latencyCounts.ranges) rebuilt.recordCount(lowest, count);
  EXPECT_EQ(rebuilt.count(), r.latency.count());
  EXPECT_EQ(rebuilt.valueAtPercentile(90), r.latency.valueAtPercentile(90));
}

SweepReport sampleSearch() {
  SweepReport sweep;
  SearchReport& s = sweep.search.emplace();
  s.objective = *parseObjective("p99=1ms");
  s.upperBound = 6000;
  s.boundFromProbe = true;
  s.probe = stepReport(2, 12'000, 3'000'000);
  auto step = [&](StepKind kind, double rate, uint64_t nanos, bool meets) {
    LoadReport report = stepReport(2, static_cast<uint64_t>(rate * 2), nanos);
    report.series = {IntervalFigures{0, 1, static_cast<uint64_t>(rate), 0, 0, nanos, nanos, nanos},
                     IntervalFigures{1, 1, static_cast<uint64_t>(rate), 0, 0, nanos, nanos, nanos}};
    StepReport r = StepReport::of(report, 99);
    r.index = static_cast<int>(sweep.steps.size()) + 1;
    r.kind = kind;
    r.rate = rate;
    r.meets = meets;
    sweep.whole.add(report);
    sweep.steps.push_back(r);
  };
  step(StepKind::kSearch, 6000, 50'000'000, false);
  step(StepKind::kSearch, 3000, 300'000, true);
  step(StepKind::kSearch, 4500, 2'000'000, false);
  step(StepKind::kSearch, 3750, 500'000, true);
  step(StepKind::kConfirm, 3750, 600'000, true);
  s.maxRate = 3750;
  s.metStep = 4;
  s.missedStep = 3;
  s.confirmStep = 5;
  return sweep;
}

TEST(SweepReportTest, TheTableSaysTheAnswerAndTheStepsThatSupportIt) {
  SweepReport sweep = sampleSearch();
  RunDescription run;
  run.config.target = *parseAddress("127.0.0.1:2002");
  run.sweep = "requests, open loop, search for the highest rate at p99 ≤ 1 ms";
  std::string text = formatSteps(run, sweep);
  EXPECT_EQ(
      text.rfind("reverb-load: requests, open loop, search for the highest rate at p99 ≤ 1 ms -> "
                 "127.0.0.1:2002, step by step\n",
                 0),
      0u)
      << text;
  EXPECT_NE(text.find("closed-loop probe: 6000 req/s"), std::string::npos) << text;
  EXPECT_NE(text.find("max sustainable req/s at p99 ≤ 1 ms: 3750\n"), std::string::npos) << text;
  EXPECT_NE(text.find("step 4 met it at 3750 req/s"), std::string::npos) << text;
  EXPECT_NE(text.find("step 3 missed it at 4500 req/s"), std::string::npos) << text;
  EXPECT_NE(text.find("step 5 confirmed it at 3750 req/s"), std::string::npos) << text;
  EXPECT_NE(text.find("confirm"), std::string::npos) << text;
  // One row per step, each with its verdict.
  size_t met = 0;
  size_t missed = 0;
  for (size_t at = 0; (at = text.find("  met\n", at)) != std::string::npos; ++at) ++met;
  for (size_t at = 0; (at = text.find("  missed\n", at)) != std::string::npos; ++at) ++missed;
  EXPECT_EQ(met, 3u);
  EXPECT_EQ(missed, 2u);

  sweep.search->maxRate.reset();
  sweep.search->metStep.reset();
  sweep.search->missedStep.reset();
  sweep.search->confirmStep.reset();
  for (auto& step : sweep.steps) step.meets = false;
  EXPECT_NE(formatSteps(run, sweep)
                .find("max sustainable req/s at p99 ≤ 1 ms: none: no rate tried met it"),
            std::string::npos);
}

TEST(SweepReportTest, JsonHasStepsTheirHistogramsTheSearchAndTheTimeSeries) {
  SweepReport sweep = sampleSearch();
  RunDescription run;
  run.config.target = *parseAddress("127.0.0.1:2002");
  run.config.warmup = std::chrono::milliseconds(500);
  run.sweep = "requests, open loop, search for the highest rate at p99 ≤ 1 ms";
  std::string text = formatJson(run, sweep.whole, &sweep);
  auto json = parseJson(text);
  ASSERT_TRUE(json) << text;
  const JsonValue& steps = (*json)["steps"];
  ASSERT_EQ(steps.array.size(), 5u);
  double sum = 0;
  for (size_t i = 0; i < steps.array.size(); ++i) {
    const JsonValue& s = steps.array[i];
    EXPECT_EQ(s["index"].number, static_cast<double>(i + 1));
    EXPECT_EQ(s["rate_asked"].number, sweep.steps[i].rate);
    EXPECT_EQ(s["meets_objective"].boolean, *sweep.steps[i].meets);
    EXPECT_EQ(s["latency_histogram"]["count"].number, s["requests"].number);
    ASSERT_EQ(s["latency_histogram"]["counts"].array.size(), 1u);  // one latency per step here
    EXPECT_EQ(s["latency_histogram"]["counts"].array[0].array[1].number, s["requests"].number);
    sum += s["requests"].number;
  }
  EXPECT_EQ(steps.array[4]["kind"].string, "confirm");
  EXPECT_EQ(sum, (*json)["requests"].number);
  const JsonValue& slo = (*json)["slo"];
  EXPECT_EQ(slo["objective"].string, "p99 ≤ 1 ms");
  EXPECT_EQ(slo["target_us"].number, 1000);
  EXPECT_EQ(slo["max_rate"].number, 3750);
  EXPECT_TRUE(slo["confirmed"].boolean);
  EXPECT_EQ(slo["upper_bound_from"].string, "closed-loop probe");
  EXPECT_EQ(slo["closed_loop_probe"]["requests_per_second"].number, 6000);
  EXPECT_EQ(slo["supporting_steps"]["met"].number, 4);
  EXPECT_EQ(slo["supporting_steps"]["missed"].number, 3);
  EXPECT_EQ(slo["supporting_steps"]["confirmed"].number, 5);
  // Two intervals per step, each naming its step.
  const JsonValue& series = (*json)["timeseries"];
  ASSERT_EQ(series.array.size(), 10u);
  EXPECT_EQ(series.array[3]["step"].number, 2);
  EXPECT_EQ(series.array[3]["start_seconds"].number, 1);
  EXPECT_EQ(series.array[3]["requests_per_second"].number, 3000);
  EXPECT_EQ(series.array[3]["p99_us"].number, 300);
}

TEST(SweepReportTest, APlainRunHasItsTimeSeriesAndNoSteps) {
  RunDescription run;
  run.config.target = *parseAddress("127.0.0.1:2002");
  LoadReport r = stepReport(1.5, 30, 1000);
  r.series = {IntervalFigures{0, 1, 20, 1, 0, 1000, 1000, 1000},
              IntervalFigures{1, 0.5, 10, 0, 0, 1000, 1000, 1000},
              IntervalFigures{1.5, 0, 0, 0, 0, 0, 0, 0}};
  auto json = parseJson(formatJson(run, r));
  ASSERT_TRUE(json);
  EXPECT_FALSE(json->has("steps"));
  EXPECT_FALSE(json->has("slo"));
  const JsonValue& series = (*json)["timeseries"];
  ASSERT_EQ(series.array.size(), 3u);
  EXPECT_FALSE(series.array[0].has("step"));
  EXPECT_EQ(series.array[0]["elapsed_seconds"].number, 1);  // after the default 1 s warmup
  EXPECT_EQ(series.array[1]["requests_per_second"].number, 20);
  EXPECT_EQ(series.array[0]["errors"].number, 1);
  // An interval without a request has no latency.
  EXPECT_EQ(series.array[2]["p50_us"].kind, JsonValue::Kind::kNull);
  EXPECT_EQ((*json)["timeseries_interval_seconds"].number, 1);
}

}  // namespace
}  // namespace reverb::load
