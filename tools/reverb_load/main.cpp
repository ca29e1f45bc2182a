// reverb-load: a load generator for reverbd that checks every reply. This usage block is what
// `reverb-load --help` prints above the flag list.
static constexpr const char* kUsage = R"(reverb-load: load generator that checks every reply against proto's own reversal.

Usage:
  reverb-load [--target HOST:PORT] [--threads T] [--connections C] [--pipeline P]
              [--rate R] [--mode requests|connect] [--close fin|rst] [--source-addrs N]
              [--connect-rate R] [--duration S | --requests N] [--warmup S] [--timeout S]
              [--rate-steps R1,R2,... | --ramp START:END:STEP:SECONDS | --slo pP=TIME]
              [--framing chunk|line|length] [--unit U]
              [--message TEXT | --size N | --size-min N --size-max N] [--payload ascii|utf8|binary]
              [--json FILE]
  reverb-load merge A.json B.json ... [--json FILE]

Examples:
  reverb-load --target 127.0.0.1:2002 --connections 50 --duration 10      closed loop
  reverb-load --rate 20000 --connections 50 --duration 10                  open loop
  reverb-load --mode connect --connections 20 --close rst --duration 10    connection churn
  reverb-load --rate-steps 10k,20k,40k --connections 50 --duration 5       latency at 3 rates
  reverb-load --ramp 5000:50000:5000:3s --connections 50                   the same, 10 steps
  reverb-load --slo p99=1ms --connections 50 --duration 3                  highest rate at p99 <= 1 ms
  reverb-load merge gen1.json gen2.json --json all.json                    several generators

Modes:
  closed loop (default)  each connection keeps --pipeline requests in flight.
  open loop (--rate R)   R requests/s in total at a constant pace; latency from each request's
                         intended send time (coordinated omission corrected), the uncorrected
                         figure and the send delay beside it, achieved rate beside the asked one.
  --mode connect         each of --connections slots loops connect, send one request, read and
                         check the reply, close; connect latency is reported on its own.

Latency under rising load (open loop, requests mode): each step is a run of its own, with fresh
connections, its own --warmup and a window of --duration (--ramp: of SECONDS), so an overloaded
step leaves no backlog to the next. Each step's figures are printed as a table; the whole run's
table below it adds the steps up.
  --rate-steps R1,R2,... one step per rate (requests/s; 5k = 5000).
  --ramp S:E:STEP:SECS   steps S, S+STEP, ... up to E, each SECS long.
  --slo pP=TIME          the highest rate whose corrected pP stays at or under TIME (p99=1ms,
                         p99.9=250us, p50=2ms): the upper bound is --rate, or else a closed-loop
                         run first; from there it halves until a rate meets the objective, then
                         bisects to 2%, repeats the lowest rate that missed (a stall can make a
                         rate miss, never meet) and repeats the answer to confirm it. A rate
                         meets it when its step completed at least 90% of the requests it asked
                         for and its pP is at most TIME. About 8-12 runs of --warmup + --duration.
Every run's --json has a per-interval time series ("timeseries", 1 s intervals: requests/s, p50,
p99, max, errors, mismatches); a sweep's also has "steps" (each step's figures and its mergeable
latency histogram) and, for --slo, "slo" (the answer and the steps that support it).

Checks: each reply byte is compared with reverb::expectedReply(framing, unit, message). Line
and length framing check each reply exactly, pipelined or not. Chunk framing (the server
reverses whatever one read returned) allows --pipeline 1 only; each request goes out in one
send() and the reply bytes are gathered until as many as the request had arrived, then must
equal the reversal of the whole request. That is what the server sends when one read returns
the whole request (on loopback: requests up to the server's read size); a server that read it
in parts sends parts reversed in place, which is counted as a mismatch.
Mismatches print as hex diffs (first --max-diffs); after one, the connection is replaced.
Figures cover the window after --warmup; mismatches and errors cover the whole run.

merge: adds up the --json files of generators that ran at the same time (several processes or
machines against one service): counters and histogram counts are summed (percentiles are never
averaged), rates are over the longest window, and the usual report is printed (--json writes it).

Exit status: 0 when every reply matched and nothing failed; 1 on any mismatch or error (in any
step), or when the target cannot be reached; 2 on bad usage. Whether --slo found a rate does not
change it.)";

#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/net.h"
#include "load/load_run.h"
#include "load/merge.h"
#include "load/payload.h"
#include "load/report.h"
#include "load/sweep.h"
#include "load/system_info.h"
#include "proto/framing.h"
#include "proto/reverse.h"

namespace {

using reverb::load::LoadRun;
using reverb::load::Sweep;

LoadRun* gRun = nullptr;  // for the signal handler; set while run() is in progress
Sweep* gSweep = nullptr;  // likewise, during a sweep

extern "C" void onSignal(int) {
  // Async-signal-safe: atomic stores and a write(). The load threads block signals, so this runs
  // on the main thread, never while it destroys the run it points to.
  if (gRun != nullptr) gRun->stop();
  if (gSweep != nullptr) gSweep->stop();
}

// Names reverb::parseUnit accepts, probed so new units show up in --help without edits here.
std::string knownUnits() {
  std::string out;
  for (const char* name : {"byte", "codepoint", "grapheme", "word", "line"}) {
    if (reverb::parseUnit(name)) out += (out.empty() ? "" : "|") + std::string(name);
  }
  return out;
}

// Says on stderr which step starts, above its progress lines.
class StderrSweep final : public reverb::load::SweepObserver {
 public:
  StderrSweep(reverb::load::ProgressSink* progress, size_t steps)
      : progress_(progress), steps_(steps) {}
  void onRunStart(int index, reverb::load::StepKind kind, double rate) override {
    using reverb::load::StepKind;
    if (index == 0) {
      std::fprintf(stderr, "closed-loop probe: how many requests/s these connections carry\n");
    } else if (kind == StepKind::kStep) {
      std::fprintf(stderr, "step %d of %zu: open loop at %.6g req/s\n", index, steps_, rate);
    } else {
      std::fprintf(stderr, "step %d (%s): open loop at %.6g req/s\n", index,
                   kind == StepKind::kConfirm   ? "repeat run of the answer"
                   : kind == StepKind::kRecheck ? "repeat run of the lowest miss"
                                                : "search",
                   rate);
    }
  }
  void onStepEnd(const reverb::load::StepReport& step) override {
    if (step.meets) {
      std::fprintf(stderr, "step %d: %.0f req/s achieved: %s\n", step.index,
                   step.requestsPerSecond(), *step.meets ? "met" : "missed");
    }
  }
  reverb::load::ProgressSink* progress() override { return progress_; }

 private:
  reverb::load::ProgressSink* progress_;
  size_t steps_;
};

class StderrProgress final : public reverb::load::ProgressSink {
 public:
  explicit StderrProgress(bool connectMode) : connectMode_(connectMode) {}
  void onProgress(const reverb::load::Progress& p) override {
    std::string p99 = p.warmup || p.p99Nanos == 0 ? "-" : reverb::load::formatMicros(p.p99Nanos);
    if (connectMode_) {
      std::fprintf(stderr, "[%6.1f s]%s %10.0f conn/s %10.0f req/s  p99 %8s us  errors %llu  mismatches %llu\n",
                   p.elapsed, p.warmup ? " warmup" : "       ", p.connectionsPerSecond, p.requestsPerSecond,
                   p99.c_str(), static_cast<unsigned long long>(p.errors),
                   static_cast<unsigned long long>(p.mismatches));
    } else {
      std::fprintf(stderr, "[%6.1f s]%s %10.0f req/s  p99 %8s us  errors %llu  mismatches %llu\n", p.elapsed,
                   p.warmup ? " warmup" : "       ", p.requestsPerSecond, p99.c_str(),
                   static_cast<unsigned long long>(p.errors), static_cast<unsigned long long>(p.mismatches));
    }
  }

 private:
  bool connectMode_;
};

// Writes `text` to `path`; false (said on stderr) when it cannot.
bool writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) {
    std::fprintf(stderr, "reverb-load: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

// --rate-steps, --ramp, --slo: the steps one after another, their table, then the whole run's.
int runSweep(const reverb::load::RunDescription& run, const reverb::load::MessagePool& pool,
             const std::vector<double>& rates,
             const std::optional<reverb::load::Objective>& objective, double upperBound,
             const std::string& jsonPath, bool noProgress) {
  using namespace reverb::load;
  StderrProgress progress(false);
  StderrSweep observer(noProgress ? nullptr : &progress, rates.size());
  Sweep sweep(run.config, pool, &observer);
  struct sigaction handler{};
  handler.sa_handler = onSignal;
  sigemptyset(&handler.sa_mask);
  gSweep = &sweep;
  sigaction(SIGINT, &handler, nullptr);
  sigaction(SIGTERM, &handler, nullptr);
  SweepReport report = objective ? sweep.search(*objective, upperBound) : sweep.runSteps(rates);
  gSweep = nullptr;
  if (report.failure) std::fprintf(stderr, "reverb-load: %s\n", report.failure->message().c_str());

  // The whole run's table says what was asked on average over the steps' windows.
  RunDescription whole = run;
  double askedTimesSeconds = 0;
  for (const StepReport& step : report.steps) askedTimesSeconds += step.rate * step.seconds;
  whole.config.rate = report.whole.seconds > 0 ? askedTimesSeconds / report.whole.seconds : 0;
  std::string text = formatSteps(run, report) + "\n" + formatTable(whole, report.whole);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  if (!jsonPath.empty() && !writeFile(jsonPath, formatJson(whole, report.whole, &report))) return 1;
  bool passed = runPassed(report.whole) && !report.failure;
  if (report.search && report.search->probe) {
    const LoadCounters& probe = report.search->probe->counters;
    passed = passed && probe.mismatches == 0 && probe.errorTotal() == 0;
  }
  return passed ? 0 : 1;
}

// `reverb-load merge A.json B.json ... [--json OUT]`: argv[0] is "merge".
int mergeMain(int argc, char** argv) {
  using namespace reverb::load;
  std::vector<std::string> files;
  std::string jsonPath;
  CLI::App app{"reverb-load merge: adds up the --json files of load generators that ran at the same "
               "time, and prints the usual report.",
               "reverb-load merge"};
  app.add_option("files", files, "--json files of reverb-load runs")->required()->type_name("FILE");
  app.add_option("--json", jsonPath, "Write the merged figures to FILE as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  std::vector<RecordedRun> runs;
  for (const std::string& file : files) {
    std::ifstream in(file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) {
      std::fprintf(stderr, "reverb-load merge: cannot read %s\n", file.c_str());
      return 1;
    }
    auto run = readRecordedRun(text, file);
    if (!run) {
      std::fprintf(stderr, "reverb-load merge: %s\n", run.error().context.c_str());
      return 1;
    }
    runs.push_back(std::move(*run));
  }
  auto merged = mergeRuns(runs);
  if (!merged) {
    std::fprintf(stderr, "reverb-load merge: %s\n", merged.error().context.c_str());
    return 1;
  }
  std::fputs(mergeSummary(runs, *merged).c_str(), stdout);
  std::fputs(formatTable(merged->run, merged->report).c_str(), stdout);
  std::fflush(stdout);
  if (!jsonPath.empty()) {
    std::ofstream out(jsonPath, std::ios::trunc);
    out << formatJson(merged->run, merged->report);
    if (!out.flush()) {
      std::fprintf(stderr, "reverb-load merge: cannot write %s\n", jsonPath.c_str());
      return 1;
    }
  }
  return runPassed(merged->report) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace reverb;
  using namespace reverb::load;

  if (argc >= 2 && std::string_view(argv[1]) == "merge") return mergeMain(argc - 1, argv + 1);

  std::string target = "127.0.0.1:2002";
  int threads = 1;
  int connections = 10;
  int pipeline = 1;
  double rate = 0;
  std::string mode = "requests";
  std::string close = "fin";
  int sourceAddrs = 1;
  double connectRate = 0;
  std::string duration = "10s";
  uint64_t requests = 0;
  std::string warmup = "1s";
  std::string timeout = "5s";
  std::string framing = "chunk";
  std::string unit;
  std::string message;
  size_t size = 16;
  size_t sizeMin = 0;
  size_t sizeMax = 0;
  std::string payload = "ascii";
  uint64_t seed = 1;
  size_t poolSize = 0;
  std::string jsonPath;
  int maxDiffs = 5;
  int maxErrors = 5;
  bool noProgress = false;
  std::string rateSteps;
  std::string ramp;
  std::string slo;

  CLI::App app{kUsage, "reverb-load"};
  app.get_formatter()->column_width(34);
  app.add_option("--target", target, "Server address HOST:PORT; IPv6 as [ADDR]:PORT")->capture_default_str();
  app.add_option("--threads", threads, "Load threads, one epoll loop each; connections are spread over them")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--connections", connections,
                 "Connections (requests mode) or concurrent connect slots (connect mode)")
      ->capture_default_str()->check(CLI::Range(1, 10'000'000));
  app.add_option("--pipeline", pipeline, "Requests in flight per connection (requests mode)")
      ->capture_default_str()->check(CLI::Range(1, 65536));
  auto* rateOption =
      app.add_option("--rate", rate,
                     "Open loop: requests/s in total at a constant pace (0 = closed loop); "
                     "with --slo, the highest rate the search tries")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber);
  auto* rateStepsOption =
      app.add_option("--rate-steps", rateSteps,
                     "Open loop, one step per rate: R1,R2,... requests/s (5k = 5000), each "
                     "--warmup then --duration");
  auto* rampOption =
      app.add_option("--ramp", ramp,
                     "Open loop, steps START, START+STEP, ... up to END requests/s, each "
                     "--warmup then SECONDS: START:END:STEP:SECONDS");
  auto* sloOption =
      app.add_option("--slo", slo,
                     "Search for the highest open-loop rate whose corrected percentile meets "
                     "the target: p99=1ms, p99.9=250us, p50=2ms (see above)");
  rateStepsOption->excludes(rateOption)->excludes(rampOption)->excludes(sloOption);
  rampOption->excludes(rateOption)->excludes(sloOption);
  app.add_option("--mode", mode, "requests: many requests per connection; connect: one per connection")
      ->capture_default_str()->check(CLI::IsMember({"requests", "connect"}));
  app.add_option("--close", close, "Connect mode: close with FIN, or RST (SO_LINGER 0, no TIME_WAIT)")
      ->capture_default_str()->check(CLI::IsMember({"fin", "rst"}));
  app.add_option("--source-addrs", sourceAddrs,
                 "Spread connections over source addresses 127.0.0.1..127.0.0.N (IP_BIND_ADDRESS_NO_PORT), "
                 "so ports and TIME_WAIT allow N times more")
      ->capture_default_str()->check(CLI::Range(1, 254));
  app.add_option("--connect-rate", connectRate,
                 "Connect mode: connection starts/s in total at a constant pace (0 = as fast as the slots go)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  auto* durationOption = app.add_option("--duration", duration,
                                        "Measured time after the warmup: 10, 2.5s, 500ms, 1m")
                             ->capture_default_str();
  auto* requestsOption = app.add_option("--requests", requests,
                                        "Stop after N requests (connect mode: connections) issued after the "
                                        "warmup have completed, instead of after --duration")
                             ->check(CLI::PositiveNumber);
  requestsOption->excludes(durationOption);
  app.add_option("--warmup", warmup, "Time before the window, left out of every figure")->capture_default_str();
  app.add_option("--timeout", timeout, "A connect or a reply taking longer is a timeout error")
      ->capture_default_str();
  app.add_option("--framing", framing, "Message framing, as the server's: chunk, line or length")
      ->capture_default_str()->check(CLI::IsMember({"chunk", "line", "length"}));
  app.add_option("--unit", unit,
                 "Reversal unit, as the server's: " + knownUnits() +
                     " (default, as reverbd's: byte for chunk, grapheme for line and length where built)");
  auto* messageOption = app.add_option("--message", message, "Send this exact text every time");
  auto* sizeOption = app.add_option("--size", size, "Payload bytes per message (framing not counted)")
                         ->capture_default_str();
  auto* sizeMinOption = app.add_option("--size-min", sizeMin, "Smallest payload; sizes are uniform in [min, max]");
  auto* sizeMaxOption = app.add_option("--size-max", sizeMax, "Largest payload");
  messageOption->excludes(sizeOption)->excludes(sizeMinOption)->excludes(sizeMaxOption);
  sizeOption->excludes(sizeMinOption)->excludes(sizeMaxOption);
  app.add_option("--payload", payload,
                 "Generated payload bytes: ascii (printable), utf8 (2/3/4-byte characters, combining marks, "
                 "ZWJ emoji, flags) or binary (any byte; no LF in line framing)")
      ->capture_default_str()->check(CLI::IsMember({"ascii", "utf8", "binary"}));
  app.add_option("--seed", seed, "Seed of the payload generator")->capture_default_str();
  app.add_option("--distinct", poolSize,
                 "Distinct generated messages, cycled through (0 = up to 1024 within 64 MiB)")
      ->capture_default_str();
  app.add_option("--json", jsonPath, "Write every figure and the run's metadata to FILE as JSON");
  app.add_option("--max-diffs", maxDiffs, "Mismatches printed as hex diffs on stderr")->capture_default_str();
  app.add_option("--max-errors", maxErrors, "Errors described on stderr, one line each")->capture_default_str();
  app.add_flag("--no-progress", noProgress, "No per-second progress line on stderr");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  auto usageError = [](const std::string& what) {
    std::fprintf(stderr, "reverb-load: %s (see --help)\n", what.c_str());
    return 2;
  };

  RunDescription run;
  run.argv.assign(argv, argv + argc);
  LoadConfig& config = run.config;
  auto address = parseAddress(target);
  if (!address) return usageError(address.error().message());
  config.target = *address;
  config.mode = mode == "connect" ? Mode::kConnect : Mode::kRequests;
  config.close = close == "rst" ? CloseMode::kRst : CloseMode::kFin;
  config.threads = threads;
  config.connections = connections;
  config.pipeline = pipeline;
  config.rate = rate;
  config.connectRate = connectRate;
  config.sourceAddrs = sourceAddrs;
  config.requests = requests;
  config.maxDiffs = maxDiffs;
  config.maxErrorLines = maxErrors;
  auto d = parseDuration(duration);
  auto w = parseDuration(warmup);
  auto t = parseDuration(timeout);
  if (!d || !w || !t) return usageError("durations look like 10, 2.5s, 500ms, 250us or 1m");
  config.duration = *d;
  config.warmup = *w;
  config.timeout = *t;

  if (unit.empty()) unit = framing != "chunk" && parseUnit("grapheme") ? "grapheme" : "byte";
  auto parsedUnit = parseUnit(unit);
  if (!parsedUnit) return usageError("unknown --unit '" + unit + "'; known: " + knownUnits());
  run.framing = *parseFraming(framing);
  run.unit = *parsedUnit;
  run.payload.kind = *parsePayloadKind(payload);
  run.payload.seed = seed;
  run.payload.poolSize = poolSize;
  if (messageOption->count() > 0) {
    run.payload.message = message;
    run.payload.sizeMin = run.payload.sizeMax = message.size();
  } else if (sizeMinOption->count() > 0 || sizeMaxOption->count() > 0) {
    run.payload.sizeMin = sizeMinOption->count() ? sizeMin : 1;
    run.payload.sizeMax = sizeMaxOption->count() ? sizeMax : std::max(run.payload.sizeMin, size);
  } else {
    run.payload.sizeMin = run.payload.sizeMax = size;
  }
  if (auto ok = validate(config, run.framing); !ok) return usageError(ok.error().context);

  // A sweep: the rates of its steps, or the objective of its search.
  std::vector<double> stepRates;
  std::optional<Objective> objective;
  const bool sweeping = !rateSteps.empty() || !ramp.empty() || !slo.empty();
  if (sweeping) {
    const char* flag = !rateSteps.empty() ? "--rate-steps" : !ramp.empty() ? "--ramp" : "--slo";
    if (config.mode != Mode::kRequests)
      return usageError(std::string(flag) + " runs in requests mode, not connect");
    if (requests > 0)
      return usageError(std::string(flag) + " steps are timed: use --duration, not --requests");
  }
  if (!rateSteps.empty()) {
    auto rates = parseRates(rateSteps);
    if (!rates) return usageError(rates.error().context);
    stepRates = *rates;
    run.sweep =
        "requests, open loop in " + std::to_string(stepRates.size()) + " steps (--rate-steps)";
  } else if (!ramp.empty()) {
    if (durationOption->count() > 0)
      return usageError("--ramp sets each step's window (SECONDS): drop --duration");
    auto parsed = parseRamp(ramp);
    if (!parsed) return usageError(parsed.error().context);
    stepRates = parsed->rates;
    config.duration = parsed->stepDuration;
    run.sweep = "requests, open loop in " + std::to_string(stepRates.size()) + " steps (--ramp " +
                ramp + ")";
  } else if (!slo.empty()) {
    auto parsed = parseObjective(slo);
    if (!parsed) return usageError(parsed.error().context);
    objective = *parsed;
    run.sweep = "requests, open loop, search for the highest rate at " + objective->text;
  }

  auto pool = MessagePool::build(run.framing, run.unit, run.payload);
  if (!pool) return usageError(pool.error().context);
  run.poolSize = pool->size();
  run.meanRequestBytes = pool->meanRequestSize();
  run.meanReplyBytes = pool->meanReplySize();

  // Preflight: every connection is a file descriptor.
  long before = readKernelLimits().rlimitNofile;
  long files = raiseFileLimit();
  run.limits = readKernelLimits();
  run.machine = collectMachineInfo();
  std::fputs(preflightText(config, run.limits, before).c_str(), stderr);
  if (files > 0 && static_cast<long>(config.connections) + 64 > files) {
    std::fprintf(stderr,
                 "reverb-load: %d connections need more file descriptors than RLIMIT_NOFILE allows (%ld); "
                 "raise the hard limit (ulimit -Hn, /etc/security/limits.conf) or use fewer --connections\n",
                 config.connections, files);
    return 1;
  }

  struct sigaction ignore{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, nullptr);
  if (sweeping) return runSweep(run, *pool, stepRates, objective, rate, jsonPath, noProgress);
  auto created = LoadRun::create(config, *pool);
  if (!created) {
    std::fprintf(stderr, "reverb-load: %s; is the server running there? (--target)\n",
                 created.error().message().c_str());
    return 1;
  }
  std::unique_ptr<LoadRun> loadRun = std::move(*created);
  gRun = loadRun.get();
  struct sigaction handler{};
  handler.sa_handler = onSignal;
  sigemptyset(&handler.sa_mask);
  sigaction(SIGINT, &handler, nullptr);
  sigaction(SIGTERM, &handler, nullptr);

  StderrProgress progress(config.mode == Mode::kConnect);
  auto report = loadRun->run(noProgress ? nullptr : &progress);
  gRun = nullptr;
  if (!report) {
    std::fprintf(stderr, "reverb-load: %s\n", report.error().message().c_str());
    return 1;
  }
  std::fputs(formatTable(run, *report).c_str(), stdout);
  std::fflush(stdout);
  if (!jsonPath.empty() && !writeFile(jsonPath, formatJson(run, *report))) return 1;
  return runPassed(*report) ? 0 : 1;
}
