// reverbd: the reverb server. Reverses what clients send: by chunk (the article's protocol, the
// default), by line, or by length-prefixed frame.
//
// usage: reverbd [--listen HOST:PORT[,proxy=MODE]]... [--workers N] [--framing chunk|line|length]
//                [--unit byte|...] [--max-line BYTES] [--max-frame BYTES] [--backend
//                auto|io_uring|epoll]
//                [--reply-send auto|io_uring|send] [--proxy-protocol off|v1|v2|any] [--reuseport]
//                [--log-level LEVEL] [--drain-timeout SECONDS] [--config FILE] [--version]
//        reverbd --list-backends
//
// With no arguments it listens on port 2002 on every interface (IPv4 and IPv6), in chunk framing.
// It logs to stderr and prints one line "reverbd ready: listening on ADDR... backend=...
// workers=... framing=... unit=... sends=..." once it accepts connections (then
// " proxy=MODE[,MODE...]" when a listener requires a PROXY header, one mode per address, and
// " reuseport=on" with --reuseport). SIGINT/SIGTERM drain: stop accepting, answer every request
// already received, close, exit 0; a second signal exits at once with status 1. SIGPIPE, SIGHUP,
// SIGUSR1 and SIGUSR2 are ignored. Exit status: 0 after a drain, 1 when start-up fails or the
// event loop meets an impossible error, 2 for bad usage.
//
// --list-backends prints one line per I/O backend this build has, in preference order, to stdout,
// and exits 0: "NAME: available" or "NAME: unavailable (REASON)". Scripts (the benchmark harness)
// parse the lines matching ^(\w+): available$, so that form is a contract.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "base/net.h"
#include "server/backends/backends.h"
#include "server/server.h"

namespace {

using reverb::Framing;
using reverb::Unit;

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

// "auto (the first available of: epoll) or one of: epoll", from the backend registry.
std::string backendHelp() {
  std::vector<std::string_view> names;
  for (const reverb::BackendInfo& b : reverb::availableBackends()) names.push_back(b.name);
  std::string list = fmt::format("{}", fmt::join(names, ", "));
  return "I/O backend: auto (the first available of: " + list + ") or one of: " + list;
}

// Blocks SIGINT and SIGTERM in every thread (call before starting any) so that only the signal
// thread receives them, through sigwait.
sigset_t blockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Sends use MSG_NOSIGNAL; ignoring SIGPIPE covers any other write. A lost terminal (SIGHUP) or
  // a stray user signal must not end a server that has clients: those are ignored too.
  for (int ignored : {SIGPIPE, SIGHUP, SIGUSR1, SIGUSR2}) std::signal(ignored, SIG_IGN);
  return set;
}

// What the signal thread may touch. main clears `server` (under `mu`) before destroying it, so a
// signal that arrives during shutdown never reaches a destroyed server.
struct SignalTarget {
  std::mutex mu;
  reverb::Server* server = nullptr;
};

void watchSignals(sigset_t set, SignalTarget& target) {
  std::thread([set, &target] {
    int received = 0;
    for (int count = 0;; ++count) {
      if (sigwait(&set, &received) != 0) continue;
      if (count == 0) {
        spdlog::info("{}: draining; send it again to exit at once", strsignal(received));
        std::lock_guard lock(target.mu);
        if (target.server != nullptr) target.server->stop();
      } else {
        spdlog::warn("{} again: exiting without draining", strsignal(received));
        std::_Exit(1);
      }
    }
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  reverb::ServerConfig config;
  std::string framing = "chunk";
  std::string unit;
  std::string backend = "auto";
  std::string replySend = "auto";
  std::string logLevel = "info";
  std::string proxyProtocol = "off";
  double drainSeconds = 5.0;
  bool listBackends = false;

  CLI::App app("reverbd: a TCP server that reverses what clients send it.", "reverbd");
  app.set_version_flag("--version", REVERB_VERSION);
  app.set_config("--config", "", "Read options from a TOML file (keys are the long flag names)");
  app.add_option("--listen", config.listen,
                 "HOST:PORT to listen on; repeatable; [::1]:P for IPv6; port 0 picks a free port; "
                 "',proxy=MODE' after it sets --proxy-protocol for that address alone (default: "
                 "port 2002 on all IPv4 and IPv6 interfaces)")
      ->type_name("HOST:PORT[,proxy=MODE]")
      ->check([](const std::string& text) {
        auto spec = reverb::parseListenSpec(text);
        return spec ? std::string() : spec.error().message();
      });
  app.add_option("--proxy-protocol", proxyProtocol,
                 "PROXY protocol header every connection must start with (HAProxy's send-proxy is "
                 "v1, send-proxy-v2 is v2; any takes both): off, v1, v2 or any. A connection "
                 "without a valid one is closed")
      ->capture_default_str()
      ->check(namedBy(reverb::parseProxyMode, "PROXY protocol mode"));
  app.add_flag("--reuseport", config.reusePort,
               "Set SO_REUSEPORT on the listeners, so another reverbd started with it can share "
               "the port (scripts/restart uses this for a restart without refused connections)");
  app.add_option("--workers", config.workers, "Worker threads (default: online CPUs)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--framing", framing, "How requests are delimited: chunk, line or length")
      ->capture_default_str()
      ->check(namedBy(reverb::parseFraming, "framing"));
  app.add_option("--unit", unit,
                 "What is reversed: byte, codepoint or grapheme, as built (default: byte for "
                 "chunk, grapheme for line and length where available)")
      ->check(namedBy(reverb::parseUnit, "unit"));
  app.add_option("--max-line", config.protocol.limits.maxLine,
                 "Longest line in line framing, in bytes; longer closes the connection")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 30));
  app.add_option("--max-frame", config.protocol.limits.maxFrame,
                 "Longest frame in length framing, in bytes; longer closes the connection")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{1} << 30));
  app.add_option("--backend", backend, backendHelp())
      ->capture_default_str()
      ->check(namedBy(reverb::parseBackend, "backend"));
  app.add_option("--reply-send", replySend,
                 "How workers hand replies to the kernel: io_uring (one io_uring_enter for the "
                 "replies of up to 4 connections), send (one send(2) per connection), or auto "
                 "(io_uring where this build and kernel allow it)")
      ->capture_default_str()
      ->check(namedBy(reverb::parseReplySend, "reply send"));
  app.add_flag("--list-backends", listBackends,
               "Print each I/O backend this build has and whether this kernel can run it, then "
               "exit");
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--drain-timeout", drainSeconds,
                 "Seconds a SIGTERM drain may take before the rest is force-closed")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "reverbd: %s (see reverbd --help)\n", e.what());
    return 2;
  }

  if (listBackends) {
    for (const reverb::BackendInfo& b : reverb::availableBackends()) {
      if (b.available) {
        std::printf("%s: available\n", std::string(b.name).c_str());
      } else {
        std::printf("%s: unavailable (%s)\n", std::string(b.name).c_str(), b.reason.c_str());
      }
    }
    return 0;
  }

  config.protocol.framing = *reverb::parseFraming(framing);
  if (unit.empty()) {
    auto grapheme = reverb::parseUnit("grapheme");
    bool chunk = config.protocol.framing == Framing::kChunk;
    config.protocol.unit = !chunk && grapheme ? *grapheme : Unit::kByte;
  } else {
    config.protocol.unit = *reverb::parseUnit(unit);
  }
  if (config.protocol.framing == Framing::kChunk && config.protocol.unit != Unit::kByte) {
    std::fprintf(stderr,
                 "reverbd: --unit %s needs --framing line or length: in chunk framing a read can "
                 "end inside a character, so only --unit byte is possible\n",
                 unit.c_str());
    return 2;
  }
  config.backend = *reverb::parseBackend(backend);
  config.replySend = *reverb::parseReplySend(replySend);
  config.proxyProtocol = *reverb::parseProxyMode(proxyProtocol);
  config.drainTimeout = std::chrono::milliseconds(static_cast<long long>(drainSeconds * 1000));

  auto logger = spdlog::stderr_color_mt("reverbd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(logLevel));
  spdlog::set_default_logger(logger);

  sigset_t stopSignals = blockStopSignals();
  long files = reverb::raiseFileLimit();

  auto server = reverb::Server::create(config);
  if (!server) {
    std::fprintf(stderr, "reverbd: %s\n", server.error().message().c_str());
    return 1;
  }
  std::vector<std::string> addresses;
  for (const auto& address : (*server)->addresses()) addresses.push_back(address.toString());
  // Only what differs from the defaults is added after unit=, so the line is unchanged for
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
  // Printed whatever the log level: tests and scripts wait for this line.
  std::fprintf(
      stderr, "reverbd ready: listening on %s backend=%s workers=%zu framing=%s unit=%s sends=%s%s\n",
      fmt::format("{}", fmt::join(addresses, " ")).c_str(),
      std::string((*server)->backendName()).c_str(), (*server)->workerCount(),
      std::string(reverb::toString(config.protocol.framing)).c_str(),
      std::string(reverb::toString(config.protocol.unit)).c_str(),
      std::string((*server)->replySendName()).c_str(), extra.c_str());
  spdlog::debug("file descriptor limit {}", files);

  // Static: the detached signal thread may use it until the process ends.
  static SignalTarget signalTarget;
  signalTarget.server = server->get();
  watchSignals(stopSignals, signalTarget);
  auto ran = (*server)->run();
  {
    std::lock_guard lock(signalTarget.mu);
    signalTarget.server = nullptr;
  }
  if (!ran) {
    spdlog::error("{}", ran.error().message());
    return 1;
  }
  const reverb::ServerStats& s = (*server)->stats();
  using S = reverb::ServerStats;
  spdlog::info(
      "stopped: {} connections, {} requests, {} bytes in, {} bytes out, {} over limit, {} "
      "truncated, {} resets, {} force-closed",
      S::get(s.accepted), S::get(s.requests), S::get(s.bytesIn), S::get(s.bytesOut),
      S::get(s.tooLong), S::get(s.truncated), S::get(s.resets), S::get(s.drainForced));
  if (anyProxy) {
    spdlog::info("PROXY headers: {} accepted, {} connections closed without a valid one",
                 S::get(s.proxyHeaders), S::get(s.proxyRejected));
  }
  return 0;
}
