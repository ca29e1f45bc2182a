// reverb-load: a load generator for reverbd that checks every reply. This usage block is what
// `reverb-load --help` prints above the flag list.
static constexpr const char* kUsage = R"(reverb-load: load generator that checks every reply against proto's own reversal.

Usage:
  reverb-load [--target HOST:PORT] [--threads T] [--connections C] [--pipeline P]
              [--rate R] [--mode requests|connect] [--close fin|rst] [--source-addrs N]
              [--connect-rate R] [--duration S | --requests N] [--warmup S] [--timeout S]
              [--framing chunk|line|length] [--unit U]
              [--message TEXT | --size N | --size-min N --size-max N] [--payload ascii|utf8|binary]
              [--json FILE]

Examples:
  reverb-load --target 127.0.0.1:2002 --connections 50 --duration 10      closed loop
  reverb-load --rate 20000 --connections 50 --duration 10                  open loop
  reverb-load --mode connect --connections 20 --close rst --duration 10    connection churn

Modes:
  closed loop (default)  each connection keeps --pipeline requests in flight.
  open loop (--rate R)   R requests/s in total at a constant pace; latency from each request's
                         intended send time (coordinated omission corrected), the uncorrected
                         figure and the send delay beside it, achieved rate beside the asked one.
  --mode connect         each of --connections slots loops connect, send one request, read and
                         check the reply, close; connect latency is reported on its own.

Checks: each reply byte is compared with reverb::expectedReply(framing, unit, message). Line
and length framing check each reply exactly, pipelined or not. Chunk framing (the server
reverses whatever one read returned) allows --pipeline 1 only; each request goes out in one
send() and the reply bytes are gathered until as many as the request had arrived, then must
equal the reversal of the whole request. That is what the server sends when one read returns
the whole request (on loopback: requests up to the server's read size); a server that read it
in parts sends parts reversed in place, which is counted as a mismatch.
Mismatches print as hex diffs (first --max-diffs); after one, the connection is replaced.
Figures cover the window after --warmup; mismatches and errors cover the whole run.

Exit status: 0 when every reply matched and nothing failed; 1 on any mismatch or error, or
when the target cannot be reached; 2 on bad usage.)";

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
#include "load/payload.h"
#include "load/report.h"
#include "load/system_info.h"
#include "proto/framing.h"
#include "proto/reverse.h"

namespace {

using reverb::load::LoadRun;

LoadRun* gRun = nullptr;  // for the signal handler; set while run() is in progress

extern "C" void onSignal(int) {
  if (gRun != nullptr) gRun->stop();  // async-signal-safe: an atomic store and a write()
}

// "10", "2.5", "10s", "500ms", "250us", "2m": a duration; nullopt if malformed or negative.
std::optional<std::chrono::nanoseconds> parseDuration(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (...) {
    return std::nullopt;
  }
  std::string unit = text.substr(used);
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
  if (!(value >= 0) || !std::isfinite(value)) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(value * scale)));
}

// Names reverb::parseUnit accepts, probed so new units show up in --help without edits here.
std::string knownUnits() {
  std::string out;
  for (const char* name : {"byte", "codepoint", "grapheme", "word", "line"}) {
    if (reverb::parseUnit(name)) out += (out.empty() ? "" : "|") + std::string(name);
  }
  return out;
}

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

}  // namespace

int main(int argc, char** argv) {
  using namespace reverb;
  using namespace reverb::load;

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
  app.add_option("--rate", rate, "Open loop: requests/s in total at a constant pace (0 = closed loop)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
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
  if (!jsonPath.empty()) {
    std::ofstream out(jsonPath, std::ios::trunc);
    out << formatJson(run, *report);
    if (!out.flush()) {
      std::fprintf(stderr, "reverb-load: cannot write %s\n", jsonPath.c_str());
      return 1;
    }
  }
  return runPassed(*report) ? 0 : 1;
}
