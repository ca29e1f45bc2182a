// MetricsEndpoint: reverbd's HTTP endpoint for Prometheus and load balancers (--metrics-listen).
//
//   GET /metrics  200, the Prometheus text exposition format (what `metrics` returns)
//   GET /healthz  200 "ok" while the process runs
//   GET /readyz   200 "ready" while the server accepts; 503 and the reason (what `notReady`
//                 returns: "draining", ...) otherwise
//   other paths 404; methods other than GET and HEAD 405.
//
// The HTTP server is libmicrohttpd (libmicrohttpd-dev), on its own thread (its internal epoll
// thread): a scrape never runs on the reactor or a worker, and the callbacks read only thread-safe
// queries. At most 16 connections at once, each dropped after 10 s idle; the thread sleeps in
// epoll_wait with no timer while no connection is open, so an idle endpoint costs no CPU.
//
// Ownership: owns the listening socket and the thread; the destructor stops both (a request in
// progress is finished first). Threading: start() and the destructor from one thread; the
// callbacks run on the endpoint's thread, one request at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/net.h"
#include "base/result.h"

struct MHD_Daemon;

namespace reverb {

class MetricsEndpoint {
 public:
  struct Handlers {
    std::function<std::string()> metrics;   // the /metrics body
    std::function<std::string()> notReady;  // "" when ready, else why not (the /readyz body)
  };

  // Binds `address` (port 0 picks one) and starts serving. Fails with a sentence naming the
  // address ("bind 127.0.0.1:9100: Address already in use") or libmicrohttpd's refusal.
  static Result<std::unique_ptr<MetricsEndpoint>> start(const SocketAddress& address,
                                                        Handlers handlers);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // The bound address, with the real port.
  const SocketAddress& address() const noexcept { return address_; }

 private:
  MetricsEndpoint() = default;

  Handlers handlers_;
  SocketAddress address_;
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace reverb
