// reverbd: the reverb server. Reverses what clients send: by chunk (the article's protocol, the
// default), by line, or by length-prefixed frame.
//
// usage: reverbd [--listen HOST:PORT[,proxy=MODE]]... [--workers N] [--framing chunk|line|length]
//                [--unit byte|...] [--max-line BYTES] [--max-frame BYTES] [--backend
//                auto|io_uring|epoll]
//                [--reply-send auto|io_uring|send] [--proxy-protocol off|v1|v2|any] [--reuseport]
//                [--log-level LEVEL] [--log-format text|json] [--log-queue LINES]
//                [--metrics-listen HOST:PORT] [--drain-timeout SECONDS] [--max-connections N]
//                [--idle-timeout SECONDS] [--request-timeout SECONDS] [--tcp-keepalive SECONDS]
//                [--max-buffered BYTES] [--output-hard-limit BYTES] [--output-soft-limit BYTES]
//                [--output-soft-seconds SECONDS] [--config FILE] [--version]
//        reverbd --list-backends
//
// With no arguments it listens on port 2002 on every interface (IPv4 and IPv6), in chunk framing;
// started by systemd with socket activation, it serves the sockets it was given instead.
// It logs to stderr and prints one line "reverbd ready: listening on ADDR... backend=...
// workers=... framing=... unit=... sends=...[ proxy=MODE[,MODE...]][ reuseport=on][ metrics=ADDR]"
// once it accepts connections (proxy= when a listener requires a PROXY header, one mode per
// address). SIGINT/SIGTERM drain: stop accepting, answer every request already received, close,
// exit 0; a second signal exits at once with status 1. SIGHUP re-reads the log level (see
// reloadLogLevel). SIGPIPE, SIGUSR1 and SIGUSR2 are ignored. Exit status: 0 after a drain, 1 when
// start-up fails or the event loop meets an impossible error, 2 for bad usage (a bad value, an
// unknown flag, an unknown key in the config file, limits that cannot work together).
//
// --list-backends prints one line per I/O backend this build has, in preference order, to stdout,
// and exits 0: "NAME: available" or "NAME: unavailable (REASON)". Scripts (the benchmark harness)
// parse the lines matching ^(\w+): available$, so that form is a contract.
//
// The flags and the config file are parsed in options.cpp, which the config fuzzer shares.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <malloc.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "base/mutex.h"
#include "base/net.h"
#include "reverbd/logging.h"
#include "reverbd/metrics_endpoint.h"
#include "reverbd/options.h"
#include "reverbd/service_manager.h"
#include "server/backends/backends.h"
#include "server/log_limit.h"
#include "server/metrics.h"
#include "server/server.h"

namespace {

// Blocks SIGINT, SIGTERM and SIGHUP in every thread (call before starting any) so that only the
// signal thread receives them, through sigwait.
sigset_t blockHandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Sends use MSG_NOSIGNAL; ignoring SIGPIPE covers any other write. A stray user signal must not
  // end a server that has clients: those are ignored too.
  for (int ignored : {SIGPIPE, SIGUSR1, SIGUSR2}) std::signal(ignored, SIG_IGN);
  return set;
}

// Counted for reverb_config_reloads_total.
std::atomic<uint64_t> reloadsDone{0};
std::atomic<uint64_t> reloadsFailed{0};

// What SIGHUP reloads: the log level, and nothing else. The level is computed as start-up computes
// it: `--log-level` on the command line wins (a reload leaves it), else the config file's
// `log-level` key as the file says now, else the default, info. Every other key of the file is
// read only at start. A file that cannot be read or parsed, or a bad level, changes nothing and is
// logged as an error.
struct ReloadSource {
  std::string configFile;  // "" without --config
  bool levelOnCommandLine = false;
};

void reloadLogLevel(const ReloadSource& source) {
  reverb::notifyServiceManager("RELOADING=1");
  const auto before = spdlog::default_logger()->level();
  auto fail = [&](const std::string& why) {
    reloadsFailed.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("SIGHUP: {}; the log level stays {}", why,
                  std::string_view(spdlog::level::to_string_view(before).data(),
                                   spdlog::level::to_string_view(before).size()));
    reverb::notifyServiceManager("READY=1\nSTATUS=reload failed: see the log");
  };
  if (source.configFile.empty()) {
    fail("no --config file to reload");
    return;
  }
  if (source.levelOnCommandLine) {
    reloadsDone.fetch_add(1, std::memory_order_relaxed);
    spdlog::info(
        "SIGHUP: --log-level was given on the command line, which wins over {}; nothing "
        "to change",
        source.configFile);
    reverb::notifyServiceManager("READY=1");
    return;
  }
  const reverb::Result<std::string> read = reverb::configLogLevel(source.configFile);
  if (!read) {
    fail(fmt::format("cannot read {}: {}", source.configFile, read.error().context));
    return;
  }
  const std::string& level = *read;
  const auto next = spdlog::level::from_str(level);
  if (level != "off" && next == spdlog::level::off) {
    fail(fmt::format("{}: log-level '{}' is not one of trace, debug, info, warn, error, off",
                     source.configFile, level));
    return;
  }
  spdlog::default_logger()->set_level(next);
  reloadsDone.fetch_add(1, std::memory_order_relaxed);
  // At warn so it shows at every level but off.
  spdlog::warn("SIGHUP: log level {} (from {})", level, source.configFile);
  reverb::notifyServiceManager("READY=1");
}

// What the signal thread may touch. main clears `server` (under `mu`) before destroying it, so a
// signal that arrives during shutdown never reaches a destroyed server.
struct SignalTarget {
  reverb::Mutex mu;
  reverb::Server* server REVERB_GUARDED_BY(mu) = nullptr;
  ReloadSource reload;  // set before the signal thread starts, then read-only
};

void watchSignals(sigset_t set, SignalTarget& target) {
  std::thread([set, &target] {
    int received = 0;
    for (int stops = 0;;) {
      if (sigwait(&set, &received) != 0) continue;
      if (received == SIGHUP) {
        reloadLogLevel(target.reload);
        continue;
      }
      if (stops++ == 0) {
        spdlog::info("{}: draining; send it again to exit at once", strsignal(received));
        reverb::notifyServiceManager("STOPPING=1\nSTATUS=draining");
        reverb::MutexLock lock(target.mu);
        if (target.server != nullptr) target.server->stop();
      } else {
        spdlog::warn("{} again: exiting without draining", strsignal(received));
        std::_Exit(1);
      }
    }
  }).detach();
}

// Whether argv sets `flag` itself ("--flag VALUE" or "--flag=VALUE"), not through --config.
bool onCommandLine(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg(argv[i]);
    if (arg == flag || (arg.size() > flag.size() && arg.substr(0, flag.size()) == flag &&
                        arg[flag.size()] == '=')) {
      return true;
    }
  }
  return false;
}

// The /metrics body: the server's families, the process's, and reverbd's own.
std::string renderMetrics(const reverb::Server& server) {
  reverb::MetricsText out;
  reverb::appendServerMetrics(server, out);
  out.gauge("reverb_build_info", "reverbd's version and build, as labels.", 1.0,
            {{"version", REVERB_VERSION},
             {"buildtype", REVERB_BUILD_TYPE},
             {"systemd", reverb::serviceManagerSupported() ? "yes" : "no"}});
  out.counter("reverb_log_messages_dropped_total",
              "Log lines dropped because the log queue was full (stderr too slow or stalled).",
              reverb::droppedMessages());
  out.counter("reverb_log_messages_suppressed_total",
              "Repeated warnings held back by the rate limits (summarised in the next line).",
              reverb::LogLimiter::suppressedTotal());
  out.family("reverb_config_reloads_total", "counter",
             "SIGHUP reloads of the log level, by result.");
  out.sample("reverb_config_reloads_total", {{"result", "ok"}},
             reloadsDone.load(std::memory_order_relaxed));
  out.sample("reverb_config_reloads_total", {{"result", "failed"}},
             reloadsFailed.load(std::memory_order_relaxed));
  reverb::appendProcessMetrics(out);
  return out.take();
}

// Ends the process once the logging thread has written everything, or, if stderr has stalled for
// 2 s, at once: the lines still queued are lost, the exit status is not.
[[noreturn]] void exitAfterLogs(int status) {
  if (!reverb::finishLogging(std::chrono::seconds(2))) {
    // Said only if stderr can take it at once: a write to a full pipe would block the exit too.
    pollfd err{STDERR_FILENO, POLLOUT, 0};
    if (::poll(&err, 1, 0) == 1 && (err.revents & POLLOUT) != 0) {
      constexpr char kLost[] = "reverbd: stderr is not being read; the last log lines are lost\n";
      (void)!::write(STDERR_FILENO, kLost, sizeof kLost - 1);
    }
    std::_Exit(status);
  }
  std::exit(status);
}

}  // namespace

int main(int argc, char** argv) {
  reverb::ReverbdOptions options;
  const reverb::ParseOutcome parsed = reverb::parseCommandLine(argc, argv, options);
  if (parsed.exitCode == 0) {  // --help, --version
    std::fputs(parsed.text.c_str(), stdout);
    return 0;
  }
  if (parsed.exitCode >= 0) {
    std::fprintf(stderr, "reverbd: %s\n", parsed.text.c_str());
    return parsed.exitCode;
  }

  if (options.listBackends) {
    for (const reverb::BackendInfo& b : reverb::availableBackends()) {
      if (b.available) {
        std::printf("%s: available\n", std::string(b.name).c_str());
      } else {
        std::printf("%s: unavailable (%s)\n", std::string(b.name).c_str(), b.reason.c_str());
      }
    }
    return 0;
  }
  reverb::ServerConfig& config = options.config;
  reverb::LogFormat format = reverb::LogFormat::kText;
  (void)reverb::parseLogFormat(options.logFormat, format);

  // Socket activation: the sockets systemd passed replace --listen (before any thread starts: it
  // unsets LISTEN_FDS).
  auto inherited = reverb::inheritedListeners();
  if (!inherited) {
    std::fprintf(stderr, "reverbd: %s\n", inherited.error().message().c_str());
    return 1;
  }
  config.listenFds = *inherited;

  // Before the first thread (the logging thread) starts, so that every thread inherits the mask.
  sigset_t handledSignals = blockHandledSignals();
  reverb::setUpLogging(format, spdlog::level::from_str(options.logLevel), options.logQueue);
  if (std::getenv("NOTIFY_SOCKET") != nullptr && !reverb::serviceManagerSupported()) {
    spdlog::warn(
        "NOTIFY_SOCKET is set but this reverbd was built without systemd support: no "
        "READY=1 will be sent (meson -Dsystemd=enabled)");
  }

  // Connection buffers above 256 KiB (a connection under back-pressure holds up to its
  // high-water mark) get their own mappings, returned to the kernel when freed. glibc would
  // otherwise raise this threshold after the first such free and carve the next ones out of its
  // heaps, where a burst leaves them fragmented and held (issue 11 measured 486 of a 916 MiB peak
  // still held after the clients had gone). Setting it fixes the threshold. Smaller buffers,
  // which the request path reuses, stay on the heaps (no system call per request).
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  long files = reverb::raiseFileLimit();

  auto server = reverb::Server::create(config);
  if (!server) {
    std::fprintf(stderr, "reverbd: %s\n", server.error().message().c_str());
    // argument_out_of_domain is a limit that cannot work with the other flags (an output limit
    // above the high-water mark): bad usage, not a start-up failure.
    exitAfterLogs(server.error().code == std::errc::argument_out_of_domain ? 2 : 1);
  }
  std::unique_ptr<reverb::MetricsEndpoint> metrics;
  if (!options.metricsListen.empty()) {
    reverb::Server* s = server->get();
    auto started = reverb::MetricsEndpoint::start(
        *reverb::parseAddress(options.metricsListen),
        {[s] { return renderMetrics(*s); },
         [s] {
           // Not ready while a new connection would not be served: a drain, --max-connections
           // reached, or accepting paused because the process is out of fds.
           if (s->draining()) return std::string("draining");
           if (!s->accepting())
             return std::string("not accepting (at --max-connections or out of fds)");
           return std::string();
         }});
    if (!started) {
      std::fprintf(stderr, "reverbd: %s\n", started.error().message().c_str());
      exitAfterLogs(1);
    }
    metrics = std::move(*started);
  }
  std::vector<std::string> addresses;
  for (const auto& address : (*server)->addresses()) addresses.push_back(address.toString());
  const std::string listening = fmt::format("{}", fmt::join(addresses, " "));
  // Only what differs from the defaults is added after sends=, so the line is unchanged for
  // everyone else.
  std::vector<std::string_view> proxyModes;
  bool anyProxy = false;
  for (reverb::ProxyMode mode : (*server)->proxyModes()) {
    proxyModes.push_back(reverb::toString(mode));
    anyProxy = anyProxy || mode != reverb::ProxyMode::kOff;
  }
  std::string extra;
  if (anyProxy) extra += fmt::format(" proxy={}", fmt::join(proxyModes, ","));
  if (config.reusePort) extra += " reuseport=on";
  if (metrics) extra += " metrics=" + metrics->address().toString();
  // Printed whatever the log level: tests and scripts wait for this line.
  std::fprintf(
      stderr,
      "reverbd ready: listening on %s backend=%s workers=%zu framing=%s unit=%s sends=%s "
      "worker-policy=%s%s\n",
      listening.c_str(), std::string((*server)->backendName()).c_str(), (*server)->workerCount(),
      std::string(reverb::toString(config.protocol.framing)).c_str(),
      std::string(reverb::toString(config.protocol.unit)).c_str(),
      std::string((*server)->replySendName()).c_str(),
      std::string(reverb::toString(config.workerPolicy)).c_str(), extra.c_str());
  spdlog::debug("file descriptor limit {}", files);
  if (config.limits.maxConnections != 0 && files > 0 &&
      config.limits.maxConnections + reverb::ServerLimits::kFdReserve >
          static_cast<size_t>(files)) {
    spdlog::warn(
        "--max-connections {} needs {} file descriptors with the reserve, but the limit is {}: "
        "accepting will pause at the fd limit before the cap (raise LimitNOFILE / ulimit -n)",
        config.limits.maxConnections,
        config.limits.maxConnections + reverb::ServerLimits::kFdReserve, files);
  }
  {
    const reverb::ServerLimits& l = (*server)->config().limits;
    spdlog::info(
        "limits: max-connections {}, idle-timeout {} ms, request-timeout {} ms, tcp-keepalive {} "
        "s, max-buffered {} bytes, output-hard-limit {}, output-soft-limit {} for {} ms",
        l.maxConnections, l.idleTimeout.count(), l.requestTimeout.count(), l.tcpKeepalive.count(),
        l.maxBuffered, l.outputHardLimit, l.outputSoftLimit, l.outputSoftTime.count());
  }
  if (!config.listenFds.empty()) {
    spdlog::info("socket activation: serving {} inherited socket(s)", config.listenFds.size());
  }

  // Static: the detached signal thread may use it until the process ends.
  static SignalTarget signalTarget;
  {
    reverb::MutexLock lock(signalTarget.mu);
    signalTarget.server = server->get();
  }
  signalTarget.reload = {options.configFile, onCommandLine(argc, argv, "--log-level")};
  watchSignals(handledSignals, signalTarget);
  reverb::notifyServiceManager(fmt::format("READY=1\nSTATUS=listening on {} backend={}", listening,
                                           (*server)->backendName()));
  reverb::Result<void> ran;
  {
    reverb::Server* s = server->get();
    reverb::Watchdog watchdog([s] { return s->loopRounds(); }, [s] { s->nudgeLoop(); });
    ran = (*server)->run();
  }
  {
    reverb::MutexLock lock(signalTarget.mu);
    signalTarget.server = nullptr;
  }
  metrics.reset();
  if (!ran) {
    spdlog::error("{}", ran.error().message());
    exitAfterLogs(1);
  }
  const reverb::ServerStats& s = (*server)->stats();
  using S = reverb::ServerStats;
  std::string closedBy;
  for (size_t i = 0; i < reverb::kCloseReasonCount; ++i) {
    closedBy +=
        fmt::format("{}{} {}", i == 0 ? "" : ", ",
                    reverb::toString(static_cast<reverb::CloseReason>(i)), S::get(s.closedBy[i]));
  }
  spdlog::info(
      "stopped: {} connections, {} requests, {} bytes in, {} bytes out, {} over limit, {} "
      "truncated, {} resets, {} force-closed, {} rejected, {} paused for --max-buffered, {} "
      "malloc trims; closed by reason: {}",
      S::get(s.accepted), S::get(s.requests), S::get(s.bytesIn), S::get(s.bytesOut),
      S::get(s.tooLong), S::get(s.truncated), S::get(s.resets), S::get(s.drainForced),
      S::get(s.rejected), S::get(s.budgetPauses), S::get(s.mallocTrims), closedBy);
  if (anyProxy) {
    spdlog::info("PROXY headers: {} accepted, {} connections closed without a valid one",
                 S::get(s.proxyHeaders), S::get(s.proxyRejected));
  }
  server->reset();
  exitAfterLogs(0);
}
