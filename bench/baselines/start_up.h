// StartUp: what every baseline server does before it serves, so that they differ only in how they
// serve. The same flags (--listen, --framing, --max-line, --max-frame), RLIMIT_NOFILE raised to
// its hard limit, SIGINT and SIGTERM blocked in the calling thread (the caller receives them
// through a signalfd or a sigwait thread, before starting any other thread), and a bound listener.
// Threading: call once, from main, before any thread starts.
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <variant>

#include "base/net.h"
#include "proto/framing.h"

namespace reverb::baseline {

struct StartUp {
  UniqueFd listener;     // non-blocking, listening
  SocketAddress bound;   // with the real port
  sigset_t stopSignals;  // SIGINT and SIGTERM, blocked
  Framing framing;
  std::string framingName;
  FrameLimits limits;
};

// Parses the flags and sets up as above. On bad usage or a failure, prints one line on stderr
// ("NAME: what went wrong") and returns the exit status instead: 2 for usage, 1 for the rest.
inline std::variant<StartUp, int> startUp(const char* name, const char* description, int argc,
                                          char** argv) {
  std::string listen = "127.0.0.1:2002";
  std::string framingName = "chunk";
  FrameLimits limits;
  CLI::App app{description};
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--framing", framingName, "chunk, line or length")->capture_default_str();
  app.add_option("--max-line", limits.maxLine, "longest line in line framing")
      ->capture_default_str();
  app.add_option("--max-frame", limits.maxFrame, "longest payload in length framing")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto framing = parseFraming(framingName);
  if (!framing) {
    std::fprintf(stderr, "%s: unknown framing '%s': use chunk, line or length\n", name,
                 framingName.c_str());
    return 2;
  }
  auto address = parseAddress(listen);
  if (!address) {
    std::fprintf(stderr, "%s: %s\n", name, address.error().message().c_str());
    return 2;
  }
  raiseFileLimit();
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto listener = listenOn(*address, 4096);
  if (!listener) {
    std::fprintf(stderr, "%s: %s\n", name, listener.error().message().c_str());
    return 1;
  }
  auto bound = localAddress(listener->get());
  if (!bound) {
    std::fprintf(stderr, "%s: %s\n", name, bound.error().message().c_str());
    return 1;
  }
  return StartUp{std::move(*listener), *bound, stop, *framing, framingName, limits};
}

}  // namespace reverb::baseline
