// Server: reverbd as a library. Binds the listeners, builds the backend, the reactor and the
// worker pool from a ServerConfig, and runs them. Tests embed it; src/reverbd/main.cpp wraps it.
// Ownership: owns everything it builds. Threading: create() and run() on one thread (run() turns
// it into the loop thread); stop(), stats() and the queries marked thread-safe may be called from
// any thread (the metrics endpoint's, the signal thread, the watchdog) while run() runs.
// accepting() is thread-safe too: the readiness probe asks it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/net.h"
#include "base/result.h"
#include "server/backends/backends.h"
#include "server/connection.h"
#include "server/job_queue.h"
#include "server/proxy_stage.h"
#include "server/send_ring.h"
#include "server/stats.h"
#include "server/worker_pool.h"

namespace reverb {

class Reactor;
class WorkerPool;

// One --listen value: "HOST:PORT", optionally followed by ",proxy=MODE" (off, v1, v2, any), which
// overrides ServerConfig::proxyProtocol for that address.
struct ListenSpec {
  SocketAddress address;
  std::optional<ProxyMode> proxy;
};
// Fails with a sentence naming what is wrong ("address '...': ...", "unknown option ...").
Result<ListenSpec> parseListenSpec(std::string_view text);
// What a server lets its clients hold: connections, time and memory. Every limit has a reverbd
// flag and config key of the same name (docs/OPERATIONS.md, "Limits"). 0 turns a limit off,
// except where said.
struct ServerLimits {
  // Descriptors kept for everything but connections (listeners, the backend, logs, the metrics
  // endpoint) when maxConnections is derived from RLIMIT_NOFILE.
  static constexpr size_t kFdReserve = 64;

  // --max-connections. 0: RLIMIT_NOFILE at create() minus kFdReserve (half of RLIMIT_NOFILE when
  // that is 2 * kFdReserve or less). Past it a new connection is accepted and closed at once.
  size_t maxConnections = 0;
  // --idle-timeout: close a connection that has held no unfinished request and no unsent reply
  // for this long.
  std::chrono::milliseconds idleTimeout{300'000};
  // --request-timeout: close a connection whose unfinished request, or whose unsent replies, make
  // no progress for this long (a request must be complete this long after its first byte).
  std::chrono::milliseconds requestTimeout{30'000};
  // --tcp-keepalive: SO_KEEPALIVE with TCP_KEEPIDLE of this many seconds, TCP_KEEPINTVL a third of
  // it and TCP_KEEPCNT 3 (Redis's tcp-keepalive), set on the listeners and inherited by every
  // accepted socket.
  std::chrono::seconds tcpKeepalive{300};
  // --max-buffered: bytes all connections together may hold (input not parsed, replies not
  // sent) before reading pauses on those holding Reactor::kBudgetShare or more.
  size_t maxBuffered = size_t{256} << 20;
  // --output-hard-limit / --output-soft-limit / --output-soft-seconds: replies one connection owes
  // while its socket is full (see ProtocolConfig::outputHardLimit). Reaching the hard limit closes
  // it at once; staying above the soft limit for outputSoftTime closes it then. Each must be at
  // most the high-water mark (1 MiB, or more for large --max-line/--max-frame).
  size_t outputHardLimit = 0;
  size_t outputSoftLimit = 0;
  std::chrono::milliseconds outputSoftTime{60'000};
};

struct ServerConfig {
  // Empty: port 2002 on every interface, IPv4 and IPv6 (IPv6 skipped where the host has none).
  // Each entry is parsed by parseListenSpec.
  std::vector<std::string> listen;
  // The PROXY protocol header every listener requires, unless its --listen entry says otherwise.
  ProxyMode proxyProtocol = ProxyMode::kOff;
  // SO_REUSEPORT on every listener: several processes (an old and a new reverbd during a restart)
  // can listen on one port, and the kernel spreads new connections over them.
  bool reusePort = false;
  size_t workers = 0;  // 0: one per online CPU
  ProtocolConfig protocol;
  BackendKind backend = BackendKind::kAuto;  // obeyed: see makeBackend()
  ReplySend replySend = ReplySend::kAuto;    // how workers send replies: see SendRing
  WorkerPolicy workerPolicy = WorkerPolicy::kBatch;  // the workers' scheduling: see WorkerPolicy
  std::chrono::milliseconds drainTimeout{5000};
  int backlog = 4096;  // the kernel caps it at net.core.somaxconn
  // Listening sockets inherited from the service manager (systemd socket activation). When not
  // empty they are served instead of `listen`, which must then be empty; the server owns them.
  std::vector<int> listenFds;
  // Fill WorkerStats (busy time, the service-time histogram): one clock read per strand a worker
  // runs. reverbd turns it on with the metrics endpoint.
  bool timeRequests = false;
  ServerLimits limits;
};

class Server {
 public:
  // Binds every listener and makes the backend config.backend names (through makeBackend); the
  // workers start here too. Fails with a sentence naming what could not be done ("bind
  // 0.0.0.0:2002: Address already in use", or why the chosen backend cannot run here, or an
  // output limit above what the strand lets unsent replies reach: code argument_out_of_domain).
  static Result<std::unique_ptr<Server>> create(const ServerConfig& config);
  ~Server();

  // The bound addresses, with the real port where the config said 0.
  const std::vector<SocketAddress>& addresses() const noexcept { return addresses_; }
  // The PROXY mode of each address, in the same order.
  const std::vector<ProxyMode>& proxyModes() const noexcept { return proxyModes_; }
  std::string_view backendName() const noexcept;
  size_t workerCount() const noexcept;
  // "io_uring" or "send": what the workers use, with kAuto resolved.
  std::string_view replySendName() const noexcept { return toString(replySend_); }
  const ServerConfig& config() const noexcept { return config_; }

  // Serves until stop(), then drains. Returns once every connection is closed and every worker
  // has stopped.
  Result<void> run();
  // Thread-safe; may be called before run() starts.
  void stop() noexcept;

  // Thread-safe: whether a new connection would be served now, for a readiness check (/readyz).
  // True from create() on (the listeners are bound; the kernel queues connections until run()
  // accepts them); false from stop() on (the drain), while accepting is paused for lack of file
  // descriptors, and while --max-connections connections are open. A relaxed load: cheap enough to
  // call on every probe.
  bool accepting() const noexcept;

  const ServerStats& stats() const noexcept { return stats_; }
  // Thread-safe: one per worker; zero unless config.timeRequests.
  std::span<const WorkerStats> workerStats() const noexcept;
  // Thread-safe: jobs waiting for a worker (approximate while threads push and pop).
  size_t queueDepth() const noexcept { return queue_.sizeApprox(); }
  // Thread-safe: stop() has been called; the server no longer accepts (or is about to stop).
  bool draining() const noexcept;
  // Thread-safe: reactor loop rounds so far, and a wake-up that makes it run one; a watchdog that
  // nudges and sees the count move knows the loop is alive.
  uint64_t loopRounds() const noexcept;
  void nudgeLoop() noexcept;

 private:
  explicit Server(const ServerConfig& config);

  ServerConfig config_;
  ServerStats stats_;
  JobQueue<ConnectionPtr> queue_;
  std::vector<SocketAddress> addresses_;
  ReplySend replySend_ = ReplySend::kSend;
  std::vector<ProxyMode> proxyModes_;
  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<WorkerPool> pool_;
};

}  // namespace reverb
