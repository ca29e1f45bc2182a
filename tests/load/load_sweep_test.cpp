// Latency under rising load, with the real reverb-load binary ($REVERB_LOAD) against in-process
// FaultServers: the steps of --rate-steps and --ramp add up to the whole run (requests, errors,
// mismatches, the merged latency histogram) and each step's time series adds up to the step; the
// --slo search finds the capacity of a serial server (one request at a time, a fixed service
// time) within 10% of what theory gives; the sweep flags refuse what they cannot do. Every run is
// bounded by its steps' durations and by a deadline.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "load/histogram.h"
#include "support/fault_server.h"
#include "support/json_value.h"
#include "support/tool_process.h"

namespace reverb::testing {
namespace {

using namespace std::chrono_literals;

struct LoadRunResult {
  ToolResult tool;
  JsonValue json;
};

std::string tempJsonPath() {
  static int counter = 0;
  return ::testing::TempDir() + "reverb-load-sweep-" + std::to_string(::getpid()) + "-" +
         std::to_string(++counter) + ".json";
}

// Runs reverb-load against `target` (line framing, byte unit) with `args` plus --json; fails the
// test if the JSON is absent or malformed.
LoadRunResult runLoad(const SocketAddress& target, std::vector<std::string> args) {
  const std::string binary = envOr("REVERB_LOAD");
  EXPECT_FALSE(binary.empty()) << "REVERB_LOAD is not set (meson test sets it)";
  const std::string jsonPath = tempJsonPath();
  args.insert(args.begin(), {"--target", target.toString(), "--json", jsonPath, "--no-progress",
                             "--framing", "line", "--unit", "byte"});
  LoadRunResult r;
  r.tool = runTool(binary, args, 300s);
  EXPECT_FALSE(r.tool.timedOut) << r.tool.err;
  std::ifstream in(jsonPath);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = parseJson(text.str());
  EXPECT_TRUE(parsed.has_value()) << "no valid JSON in " << jsonPath << ":\n"
                                  << text.str() << "\nstderr:\n"
                                  << r.tool.err;
  if (parsed) r.json = std::move(*parsed);
  std::remove(jsonPath.c_str());
  return r;
}

std::unique_ptr<FaultServer> startServer(FaultServerOptions options) {
  auto server = FaultServer::start(options);
  EXPECT_TRUE(server.has_value()) << (server ? "" : server.error().message());
  return server ? std::move(*server) : nullptr;
}

double num(const JsonValue& v, const std::string& key) {
  EXPECT_TRUE(v[key].isNumber()) << key << " is missing or not a number";
  return v[key].number;
}

// The histogram a step's "latency_histogram" describes, rebuilt from its count ranges.
Histogram rebuild(const JsonValue& h) {
  Histogram out(static_cast<uint64_t>(num(h, "highest_trackable")),
                static_cast<int>(num(h, "significant_digits")));
  EXPECT_EQ(h["unit"].string, "ns");
  for (const JsonValue& pair : h["counts"].array) {
    EXPECT_EQ(pair.array.size(), 2u);
    if (pair.array.size() == 2) {
      out.recordCount(static_cast<uint64_t>(pair.array[0].number),
                      static_cast<uint64_t>(pair.array[1].number));
    }
  }
  return out;
}

// The checks every sweep's JSON must pass: steps add up to the whole run, their histograms merge
// into the whole run's latency figures, each step's time series adds up to the step.
void expectStepsAddUp(const JsonValue& j) {
  const auto& steps = j["steps"].array;
  ASSERT_FALSE(steps.empty());
  double requests = 0;
  double errors = 0;
  double mismatches = 0;
  double seconds = 0;
  double maxNanos = 0;
  Histogram merged;
  for (const JsonValue& step : steps) {
    SCOPED_TRACE("step " + std::to_string(static_cast<int>(num(step, "index"))));
    requests += num(step, "requests");
    errors += num(step, "errors");
    mismatches += num(step, "mismatches");
    seconds += num(step, "seconds");
    const JsonValue& h = step["latency_histogram"];
    EXPECT_EQ(num(h, "count"), num(step, "requests"));
    EXPECT_EQ(num(h, "count"), num(step["latency_us"], "count"));
    EXPECT_EQ(num(h, "max") / 1e3, num(step["latency_us"], "max"));
    maxNanos = std::max(maxNanos, num(h, "max"));
    Histogram stepHistogram = rebuild(h);
    EXPECT_EQ(static_cast<double>(stepHistogram.count()), num(h, "count"));
    EXPECT_TRUE(merged.merge(stepHistogram));
    // The step's intervals, in order, add up to its window.
    double stepRequests = 0;
    double intervalSeconds = 0;
    double intervalMax = 0;
    for (const JsonValue& interval : j["timeseries"].array) {
      if (interval["step"].number != num(step, "index")) continue;
      EXPECT_NEAR(num(interval, "start_seconds"), intervalSeconds, 1e-6);
      stepRequests += num(interval, "requests");
      intervalSeconds += num(interval, "seconds");
      if (interval["max_us"].isNumber())
        intervalMax = std::max(intervalMax, interval["max_us"].number);
      EXPECT_LE(num(interval, "errors"), num(step, "errors"));
    }
    EXPECT_EQ(stepRequests, num(step, "requests"));
    EXPECT_NEAR(intervalSeconds, num(step, "seconds"), 1e-6);
    EXPECT_EQ(intervalMax, num(step["latency_us"], "max"));
  }
  EXPECT_EQ(requests, num(j, "requests"));
  EXPECT_EQ(errors, num(j, "errors"));
  EXPECT_EQ(mismatches, num(j, "mismatches"));
  EXPECT_NEAR(seconds, num(j, "seconds"), 1e-6);
  // The merged histogram is the whole run's: the same count and maximum, and the same percentiles
  // at the histogram's resolution (a rebuilt range reads as its lowest value, so a percentile in
  // the highest range may differ by at most 1/1024 of it).
  const JsonValue& whole = j["latency_us"];
  EXPECT_EQ(static_cast<double>(merged.count()), num(whole, "count"));
  EXPECT_EQ(maxNanos / 1e3, num(whole, "max"));
  for (auto [key, percentile] :
       {std::pair{"p50", 50.0}, {"p90", 90.0}, {"p99", 99.0}, {"p999", 99.9}}) {
    const double mine = merged.valueAtPercentile(percentile) / 1e3;
    EXPECT_NEAR(mine, num(whole, key), num(whole, key) / 1024 + 1e-3) << key;
  }
}

TEST(LoadSweepTest, RateStepsAddUpToTheWholeRun) {
  auto server = startServer(FaultServerOptions{});
  ASSERT_TRUE(server);
  // 1.3 s windows: each step has a full interval and a short one.
  auto r = runLoad(server->address(), {"--rate-steps", "200,400,800", "--duration", "1.3s",
                                       "--warmup", "0.2s", "--connections", "4"});
  EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err << r.tool.out;
  const auto& steps = r.json["steps"].array;
  ASSERT_EQ(steps.size(), 3u);
  const double rates[] = {200, 400, 800};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(num(steps[i], "rate_asked"), rates[i]);
    EXPECT_EQ(steps[i]["kind"].string, "step");
    EXPECT_EQ(steps[i]["meets_objective"].kind, JsonValue::Kind::kNull);
    EXPECT_NEAR(num(steps[i], "seconds"), 1.3, 0.05);
    EXPECT_GT(num(steps[i], "requests"), 0);
    EXPECT_TRUE(steps[i]["latency_uncorrected_us"]["p99"].isNumber());
  }
  EXPECT_EQ(r.json["timeseries"].array.size(), 6u);
  expectStepsAddUp(r.json);
  EXPECT_FALSE(r.json.has("slo"));
  // The whole run asked 200, 400 and 800 req/s for equal windows: 466.7 req/s on average.
  EXPECT_NEAR(num(r.json, "rate_asked"), 1400.0 / 3, 1.0);
  // Printed: a row per step, then the whole run's table.
  EXPECT_NE(r.tool.out.find("open loop in 3 steps (--rate-steps)"), std::string::npos)
      << r.tool.out;
  EXPECT_NE(r.tool.out.find("achieved/s"), std::string::npos) << r.tool.out;
  EXPECT_NE(r.tool.out.find("PASS"), std::string::npos) << r.tool.out;
  EXPECT_NE(r.tool.err.find("step 3 of 3: open loop at 800 req/s"), std::string::npos)
      << r.tool.err;
}

TEST(LoadSweepTest, RampRunsEachRateForItsSeconds) {
  auto server = startServer(FaultServerOptions{});
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(),
                   {"--ramp", "100:350:100:0.5s", "--warmup", "0.1s", "--connections", "2"});
  EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err << r.tool.out;
  const auto& steps = r.json["steps"].array;
  ASSERT_EQ(steps.size(), 3u);
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(num(steps[i], "rate_asked"), 100.0 * static_cast<double>(i + 1));
    EXPECT_NEAR(num(steps[i], "seconds"), 0.5, 0.05);
  }
  expectStepsAddUp(r.json);
}

TEST(LoadSweepTest, EveryStepCountsItsMismatchesAndAnyOneFailsTheRun) {
  FaultServerOptions options;
  options.fault = Fault::kFlipByte;
  options.every = 100;
  auto server = startServer(options);
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--rate-steps", "300,600", "--duration", "1s", "--warmup",
                                       "0s", "--connections", "4"});
  EXPECT_EQ(r.tool.exitCode, 1) << r.tool.out;
  expectStepsAddUp(r.json);
  double stepMismatches = 0;
  for (const JsonValue& step : r.json["steps"].array) stepMismatches += num(step, "mismatches");
  EXPECT_GE(stepMismatches, 5);
  EXPECT_NE(r.tool.out.find("FAIL"), std::string::npos) << r.tool.out;
}

TEST(LoadSweepTest, APlainRunsTimeSeriesAddsUpToItsWindow) {
  auto server = startServer(FaultServerOptions{});
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--rate", "300", "--duration", "2.5s", "--warmup", "0.2s",
                                       "--connections", "4"});
  EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err << r.tool.out;
  const auto& series = r.json["timeseries"].array;
  ASSERT_EQ(series.size(), 3u);  // 1 s, 1 s and 0.5 s
  double requests = 0;
  double maxUs = 0;
  for (size_t i = 0; i < series.size(); ++i) {
    EXPECT_FALSE(series[i].has("step"));
    EXPECT_EQ(num(series[i], "start_seconds"), static_cast<double>(i));
    EXPECT_NEAR(num(series[i], "elapsed_seconds"), 0.2 + static_cast<double>(i), 1e-6);
    EXPECT_NEAR(num(series[i], "seconds"), i < 2 ? 1.0 : 0.5, 0.01);
    EXPECT_NEAR(num(series[i], "requests_per_second"),
                num(series[i], "requests") / num(series[i], "seconds"), 1e-6);
    EXPECT_LE(num(series[i], "p50_us"), num(series[i], "p99_us"));
    EXPECT_LE(num(series[i], "p99_us"), num(series[i], "max_us"));
    requests += num(series[i], "requests");
    maxUs = std::max(maxUs, num(series[i], "max_us"));
  }
  EXPECT_EQ(requests, num(r.json, "requests"));
  EXPECT_EQ(maxUs, num(r.json["latency_us"], "max"));
  EXPECT_FALSE(r.json.has("steps"));
}

// The serial server answers one request at a time, each kServiceTime after the previous answer or
// its own arrival: its capacity is 1 / kServiceTime = 200 requests/s, whatever else the machine
// is doing (the deadlines start from the kernel's receive timestamps and are chained). Below it, an
// open loop at a steady pace waits about one service time; above it, the queue grows by (rate -
// capacity) requests every second, so within a 1 s window the median request waits more than
// 50 ms once the rate is 5% over capacity. The objective is the median (p50 ≤ 50 ms, ten service
// times), not a tail percentile: a shared machine stalls a niced test process for tens of
// milliseconds at times, which moves the tail of a run below capacity but not its median. A run
// that still lands outside 10% (a machine busy enough to starve reverb-load for most of a
// window) is tried again, at most three times in all, and said on stdout.
TEST(LoadSweepTest, SloSearchFindsTheCapacityOfASerialServer) {
  constexpr auto kServiceTime = 5ms;
  constexpr double kCapacity = 1.0 / std::chrono::duration<double>(kServiceTime).count();
  FaultServerOptions options;
  options.serviceTime = kServiceTime;
  auto server = startServer(options);
  ASSERT_TRUE(server);
  bool within = false;
  for (int attempt = 1; attempt <= 3 && !within; ++attempt) {
    SCOPED_TRACE("attempt " + std::to_string(attempt));
    auto r = runLoad(server->address(), {"--slo", "p50=50ms", "--duration", "1s", "--warmup",
                                         "0.5s", "--connections", "16"});
    EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err << r.tool.out;
    expectStepsAddUp(r.json);
    const JsonValue& slo = r.json["slo"];
    EXPECT_EQ(slo["objective"].string, "p50 ≤ 50 ms");
    EXPECT_EQ(num(slo, "target_us"), 50'000);
    EXPECT_EQ(slo["upper_bound_from"].string, "closed-loop probe");
    // The closed-loop probe keeps the server busy: it carries the capacity itself.
    const double probe = num(slo["closed_loop_probe"], "requests_per_second");
    EXPECT_EQ(num(slo, "upper_bound"), probe);
    if (!slo["max_rate"].isNumber()) {
      std::printf("attempt %d: closed-loop probe %.1f req/s, no confirmed answer\n%s\n", attempt,
                  probe, r.tool.out.c_str());
      continue;
    }
    EXPECT_TRUE(slo["confirmed"].boolean);
    const double answer = num(slo, "max_rate");
    // The steps that support the answer say what the report says they say.
    const auto& steps = r.json["steps"].array;
    const JsonValue& support = slo["supporting_steps"];
    const JsonValue& met = steps.at(static_cast<size_t>(num(support, "met")) - 1);
    const JsonValue& missed = steps.at(static_cast<size_t>(num(support, "missed")) - 1);
    const JsonValue& confirmed = steps.at(static_cast<size_t>(num(support, "confirmed")) - 1);
    EXPECT_EQ(num(met, "rate_asked"), answer);
    EXPECT_TRUE(met["meets_objective"].boolean);
    EXPECT_GT(num(missed, "rate_asked"), answer);
    EXPECT_FALSE(missed["meets_objective"].boolean);
    EXPECT_EQ(num(confirmed, "rate_asked"), answer);
    EXPECT_EQ(confirmed["kind"].string, "confirm");
    EXPECT_TRUE(confirmed["meets_objective"].boolean);
    EXPECT_GT(num(confirmed, "requests"), 0.9 * answer * num(confirmed, "seconds") - 1);
    for (const JsonValue& step : steps) {
      // A verdict is what the step's own figures say.
      const bool kept =
          num(step, "requests") >= 0.9 * num(step, "rate_asked") * num(step, "seconds") - 1;
      const bool fast = num(step["latency_us"], "p50") <= 50'000;
      EXPECT_EQ(step["meets_objective"].boolean, kept && fast) << "step " << num(step, "index");
    }
    EXPECT_NE(r.tool.out.find("max sustainable req/s at p50 ≤ 50 ms: "), std::string::npos)
        << r.tool.out;
    within = std::abs(probe - kCapacity) <= 0.1 * kCapacity &&
             std::abs(answer - kCapacity) <= 0.1 * kCapacity;
    std::printf(
        "attempt %d: closed-loop probe %.1f req/s, max sustainable %.1f req/s at p50 <= 50 ms, "
        "capacity %.0f req/s: %s\n",
        attempt, probe, answer, kCapacity, within ? "within 10%" : "outside 10%");
    if (!within) std::printf("%s\n", r.tool.out.c_str());
  }
  EXPECT_TRUE(within)
      << "three searches in a row missed the serial server's capacity by more than 10%";
}

TEST(LoadSweepTest, SweepFlagsRefuseWhatTheyCannotDo) {
  const std::string binary = envOr("REVERB_LOAD");
  ASSERT_FALSE(binary.empty());
  // Usage errors come before any connection: no server is needed.
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const Case cases[] = {
      {{"--rate-steps", "100,200", "--rate", "50"}, "excludes"},
      {{"--rate-steps", "100,200", "--slo", "p99=1ms"}, "excludes"},
      {{"--ramp", "100:200:100:1s", "--duration", "2s"}, "drop --duration"},
      {{"--ramp", "100:200:100"}, "START:END:STEP:SECONDS"},
      {{"--rate-steps", "100,,200"}, "--rate-steps takes rates"},
      {{"--slo", "p99=1"}, "the target needs a unit"},
      {{"--slo", "p0=1ms"}, "percentile"},
      {{"--rate-steps", "100", "--mode", "connect"}, "requests mode"},
      {{"--slo", "p99=1ms", "--requests", "100"}, "use --duration"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--target", "127.0.0.1:1", "--no-progress"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    ToolResult r = runTool(binary, args, 30s);
    EXPECT_EQ(r.exitCode, 2) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace reverb::testing
