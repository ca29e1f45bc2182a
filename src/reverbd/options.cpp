#include "reverbd/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <sstream>
#include <string_view>
#include <vector>

#include "base/net.h"
#include "proto/framing.h"
#include "proto/proxy_protocol.h"
#include "proto/reverse.h"
#include "server/backends/backends.h"
#include "server/send_ring.h"
#include "server/worker_pool.h"

namespace reverb {
namespace {

// Validates a name with the library's own parser, so the flag accepts exactly what the code
// supports.
template <typename Parse>
CLI::Validator namedBy(Parse parse, std::string what) {
  return CLI::Validator(
      [parse, what](std::string& value) -> std::string {
        return parse(value) ? std::string() : "unknown " + what + " '" + value + "'";
      },
      what);
}

// A number of seconds in [min, max]. Not CLI::Range, which lets NaN through: it rejects a value
// below min or above max, and NaN is neither ("drain-timeout = nan" in a config file became
// undefined behaviour when converted to milliseconds; found by tests/fuzz/fuzz_config).
CLI::Validator secondsBetween(double min, double max) {
  std::ostringstream description;
  description << CLI::detail::type_name<double>() << " in [" << min << " - " << max << "]";
  return CLI::Validator(
      [min, max](std::string& input) -> std::string {
        double value = 0;
        if (CLI::detail::lexical_cast(input, value) && value >= min && value <= max) return {};
        return "Value " + input + " not in range " + std::to_string(min) + " to " +
               std::to_string(max);
      },
      description.str());
}

// "auto (the first available of: epoll) or one of: epoll", from the backend registry. Computed
// once: availableBackends() probes the kernel, and the fuzzer builds the flags thousands of times.
const std::string& backendHelp() {
  static const std::string help = [] {
    std::vector<std::string_view> names;
    for (const BackendInfo& b : availableBackends()) names.push_back(b.name);
    std::string list = fmt::format("{}", fmt::join(names, ", "));
    return "I/O backend: auto (the first available of: " + list + ") or one of: " + list;
  }();
  return help;
}

// The flags as CLI11 fills them, before the checks that need more than one of them.
struct RawFlags {
  std::string framing = "chunk";
  std::string unit;
  std::string backend = "auto";
  std::string replySend = "auto";
  std::string workerPolicy = "batch";
  std::string proxyProtocol = "off";
  double drainSeconds = 5.0;
  double idleSeconds = 300;
  double requestSeconds = 30;
  double softSeconds = 60;
  int keepaliveSeconds = 300;
};

void addFlags(CLI::App& app, ReverbdOptions& options, RawFlags& raw) {
  ServerConfig& config = options.config;
  app.set_version_flag("--version", REVERB_VERSION);
  app.set_config("--config", "", "Read options from a TOML file (keys are the long flag names)");
  // An unknown key in the config file is an error, as an unknown flag is: "wrkers = 3" must not
  // leave the server running with a default the operator meant to change.
  app.allow_config_extras(false);
  app.add_option("--listen", config.listen,
                 "HOST:PORT to listen on; repeatable; [::1]:P for IPv6; port 0 picks a free port; "
                 "',proxy=MODE' after it sets --proxy-protocol for that address alone (default: "
                 "port 2002 on all IPv4 and IPv6 interfaces)")
      ->type_name("HOST:PORT[,proxy=MODE]")
      ->check([](const std::string& text) {
        auto spec = parseListenSpec(text);
        return spec ? std::string() : spec.error().message();
      });
  app.add_option("--proxy-protocol", raw.proxyProtocol,
                 "PROXY protocol header every connection must start with (HAProxy's send-proxy is "
                 "v1, send-proxy-v2 is v2; any takes both): off, v1, v2 or any. A connection "
                 "without a valid one is closed")
      ->capture_default_str()
      ->check(namedBy(parseProxyMode, "PROXY protocol mode"));
  app.add_flag("--reuseport", config.reusePort,
               "Set SO_REUSEPORT on the listeners, so another reverbd started with it can share "
               "the port (scripts/restart uses this for a restart without refused connections)");
  app.add_option("--workers", config.workers, "Worker threads (default: online CPUs)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--framing", raw.framing, "How requests are delimited: chunk, line or length")
      ->capture_default_str()
      ->check(namedBy(parseFraming, "framing"));
  app.add_option("--unit", raw.unit,
                 "What is reversed: byte, codepoint or grapheme, as built (default: byte for "
                 "chunk, grapheme for line and length where available)")
      ->check(namedBy(parseUnit, "unit"));
  app.add_option("--max-line", config.protocol.limits.maxLine,
                 "Longest line in line framing, in bytes; longer closes the connection")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 30));
  app.add_option("--max-frame", config.protocol.limits.maxFrame,
                 "Longest frame in length framing, in bytes; longer closes the connection")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{1} << 30));
  app.add_option("--backend", raw.backend, backendHelp())
      ->capture_default_str()
      ->check(namedBy(parseBackend, "backend"));
  app.add_option("--reply-send", raw.replySend,
                 "How workers hand replies to the kernel: io_uring (one io_uring_enter for the "
                 "replies of up to 4 connections), send (one send(2) per connection), or auto "
                 "(io_uring where this build and kernel allow it)")
      ->capture_default_str()
      ->check(namedBy(parseReplySend, "reply send"));
  app.add_option("--worker-policy", raw.workerPolicy,
                 "The workers' scheduling policy: batch (SCHED_BATCH: a woken worker does not "
                 "preempt the thread running on its CPU, which spares a context switch per "
                 "hand-off on small machines) or other (the process's own, SCHED_OTHER); a "
                 "worker started under a real-time policy (chrt) keeps it")
      ->capture_default_str()
      ->check(namedBy(parseWorkerPolicy, "worker policy"));
  app.add_flag("--list-backends", options.listBackends,
               "Print each I/O backend this build has and whether this kernel can run it, then "
               "exit");
  app.add_option("--log-level", options.logLevel,
                 "trace, debug, info, warn, error or off; SIGHUP re-reads it from --config")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--log-format", options.logFormat, "text, or json: one JSON object per line")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-queue", options.logQueue,
                 "Log lines that may wait for stderr; past that the oldest are dropped (and "
                 "counted), so a stalled stderr never blocks the server")
      ->capture_default_str()
      ->check(CLI::Range(size_t{16}, size_t{1} << 20));
  app.add_option("--metrics-listen", options.metricsListen,
                 "HOST:PORT for the HTTP endpoint: GET /metrics (Prometheus), /healthz, /readyz "
                 "(default: off)")
      ->type_name("HOST:PORT")
      ->check([](const std::string& text) {
        auto address = parseAddress(text);
        return address ? std::string() : address.error().message();
      });
  app.add_option("--drain-timeout", raw.drainSeconds,
                 "Seconds a SIGTERM drain may take before the rest is force-closed")
      ->capture_default_str()
      ->check(secondsBetween(0.0, 86400.0));

  // Limits (docs/OPERATIONS.md, "Limits"). 0 turns a limit off.
  ServerLimits& limits = config.limits;
  constexpr double kYear = 365 * 86400.0;
  app.add_option("--max-connections", limits.maxConnections,
                 "Connections served at once; past it a new connection is closed at once (0, the "
                 "default: RLIMIT_NOFILE minus 64)")
      ->check(CLI::Range(size_t{0}, size_t{1} << 30));
  app.add_option("--idle-timeout", raw.idleSeconds,
                 "Close a connection with no unfinished request and no unsent reply after this "
                 "many seconds (0: never)")
      ->capture_default_str()
      ->check(secondsBetween(0.0, kYear));
  app.add_option("--request-timeout", raw.requestSeconds,
                 "Close a connection whose started request, or whose unsent replies, make no "
                 "progress for this many seconds (0: never)")
      ->capture_default_str()
      ->check(secondsBetween(0.0, kYear));
  app.add_option("--tcp-keepalive", raw.keepaliveSeconds,
                 "TCP keepalive: first probe after this many idle seconds, then every third of it, "
                 "3 probes (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 32767));
  app.add_option("--max-buffered", limits.maxBuffered,
                 "Bytes every connection together may hold in input and unsent replies; above it, "
                 "reading pauses on the connections holding 16 KiB or more (0: no limit)")
      ->capture_default_str()
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--output-hard-limit", limits.outputHardLimit,
                 "Reply bytes owed to a client whose socket is full that close it at once (0: no "
                 "limit; at most the high-water mark, 1 MiB in line framing)")
      ->capture_default_str()
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--output-soft-limit", limits.outputSoftLimit,
                 "Reply bytes owed to a client whose socket is full that close it after "
                 "--output-soft-seconds above them (0: no limit; at most the high-water mark)")
      ->capture_default_str()
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--output-soft-seconds", raw.softSeconds,
                 "How long a connection may stay above --output-soft-limit")
      ->capture_default_str()
      ->check(secondsBetween(0.0, kYear));
}

std::chrono::milliseconds toMs(double seconds) {
  return std::chrono::milliseconds(std::llround(seconds * 1000));
}

// The checks that need more than one flag, and the names turned into the server's types.
ParseOutcome finish(const RawFlags& raw, ReverbdOptions& options) {
  ServerConfig& config = options.config;
  config.protocol.framing = *parseFraming(raw.framing);
  if (raw.unit.empty()) {
    auto grapheme = parseUnit("grapheme");
    bool chunk = config.protocol.framing == Framing::kChunk;
    config.protocol.unit = !chunk && grapheme ? *grapheme : Unit::kByte;
  } else {
    config.protocol.unit = *parseUnit(raw.unit);
  }
  if (config.protocol.framing == Framing::kChunk && config.protocol.unit != Unit::kByte) {
    return {2, "--unit " + raw.unit +
                   " needs --framing line or length: in chunk framing a read can end inside a "
                   "character, so only --unit byte is possible"};
  }
  config.backend = *parseBackend(raw.backend);
  config.replySend = *parseReplySend(raw.replySend);
  config.workerPolicy = *parseWorkerPolicy(raw.workerPolicy);
  config.proxyProtocol = *parseProxyMode(raw.proxyProtocol);
  config.drainTimeout = toMs(raw.drainSeconds);
  config.limits.idleTimeout = toMs(raw.idleSeconds);
  config.limits.requestTimeout = toMs(raw.requestSeconds);
  config.limits.outputSoftTime = toMs(raw.softSeconds);
  config.limits.tcpKeepalive = std::chrono::seconds(raw.keepaliveSeconds);
  config.timeRequests = !options.metricsListen.empty();
  return {};
}

}  // namespace

ParseOutcome parseCommandLine(int argc, const char* const* argv, ReverbdOptions& options) {
  RawFlags raw;
  CLI::App app("reverbd: a TCP server that reverses what clients send it.", "reverbd");
  addFlags(app, options, raw);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      std::ostringstream out;
      std::ostringstream err;
      return {app.exit(e, out, err), out.str()};
    }
    std::string message = e.what();
    // CLI11 says "INI was not able to parse KEY" for a config-file key no flag has.
    constexpr std::string_view kUnknown = "INI was not able to parse ";
    if (message.rfind(kUnknown, 0) == 0) {
      message = "unknown key '" + message.substr(kUnknown.size()) + "' in the config file";
    }
    return {2, message + " (see reverbd --help)"};
  }
  options.configFile = app.get_config_ptr()->as<std::string>();
  if (options.listBackends) return {};
  return finish(raw, options);
}

Result<std::string> configLogLevel(const std::string& path) {
  std::string level = "info";
  try {
    for (const CLI::ConfigItem& item : CLI::ConfigTOML().from_file(path)) {
      if (item.parents.empty() && item.name == "log-level" && item.inputs.size() == 1) {
        level = item.inputs.front();
      }
    }
  } catch (const CLI::Error& e) {
    return makeError(std::errc::invalid_argument, e.what());
  }
  return level;
}

}  // namespace reverb
