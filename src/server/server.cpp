#include "server/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <thread>

#include "server/backends/backends.h"
#include "server/reactor.h"
#include "server/worker_pool.h"

namespace reverb {

Result<ListenSpec> parseListenSpec(std::string_view text) {
  // The address ends at the first comma: none of its forms contains one.
  const size_t comma = text.find(',');
  auto address = parseAddress(text.substr(0, comma));
  if (!address) return address.error();
  ListenSpec spec{*address, std::nullopt};
  std::string_view rest = comma == std::string_view::npos ? "" : text.substr(comma + 1);
  while (comma != std::string_view::npos) {
    const size_t next = rest.find(',');
    const std::string_view option = rest.substr(0, next);
    constexpr std::string_view kProxy = "proxy=";
    auto mode = option.substr(0, kProxy.size()) == kProxy
                    ? parseProxyMode(option.substr(kProxy.size()))
                    : std::nullopt;
    if (!mode) {
      return makeError(std::errc::invalid_argument,
                       "listen '" + std::string(text) + "': unknown option '" +
                           std::string(option) + "' (expected proxy=off|v1|v2|any)");
    }
    spec.proxy = *mode;
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  return spec;
}

Server::Server(const ServerConfig& config) : config_(config) {}

Server::~Server() {
  reactor_.reset();
  if (pool_) pool_->stop();
}

Result<std::unique_ptr<Server>> Server::create(const ServerConfig& config) {
  std::unique_ptr<Server> server(new Server(config));
  if (server->config_.workers == 0) {
    server->config_.workers = std::max(1u, std::thread::hardware_concurrency());
  }
  // Reading pauses at the high-water mark and resumes below half of it; a partly received request
  // of the largest legal size must fit below half, or a paused connection could never resume.
  ProtocolConfig& protocol = server->config_.protocol;
  size_t largest = protocol.framing == Framing::kLength ? protocol.limits.maxFrame + 4
                                                        : protocol.limits.maxLine + 2;
  protocol.highWater = std::max(protocol.highWater, 2 * (largest + 64 * 1024));

  ServerLimits& limits = server->config_.limits;
  if (limits.maxConnections == 0) {
    rlimit files{};
    size_t nofile = 1024;
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
      nofile = static_cast<size_t>(files.rlim_cur);
    }
    limits.maxConnections = nofile > 2 * ServerLimits::kFdReserve
                                ? nofile - ServerLimits::kFdReserve
                                : std::max<size_t>(1, nofile / 2);
  }
  // Reading pauses at the high-water mark, so a connection never owes more than that: a larger
  // limit could never be reached, and an operator who set one would believe in a limit that is
  // not there.
  for (auto [value, name] : {std::pair{limits.outputHardLimit, "--output-hard-limit"},
                             std::pair{limits.outputSoftLimit, "--output-soft-limit"}}) {
    if (value > protocol.highWater) {
      // argument_out_of_domain, not invalid_argument: reverbd exits 2 (bad usage) for this
      // one, and 1 for the start-up failures that are invalid_argument (listen + inherited).
      return Error{std::make_error_code(std::errc::argument_out_of_domain),
                   fmt::format("{} {} cannot be reached: a connection holds at most {} bytes (its "
                               "high-water mark, from --framing and --max-line/--max-frame); use "
                               "that or less",
                               name, value, protocol.highWater)};
    }
  }
  protocol.outputHardLimit = limits.outputHardLimit;
  protocol.outputSoftLimit = limits.outputSoftLimit;

  std::vector<UniqueFd> listeners;
  std::vector<ProxyListener> proxyListeners;
  if (!config.listenFds.empty()) {
    if (!config.listen.empty()) {
      return makeError(std::errc::invalid_argument,
                       "--listen cannot be used with inherited sockets (socket activation): the "
                       "service manager's socket unit says where to listen");
    }
    for (int fd : config.listenFds) {
      auto inherited = adoptListener(fd);
      if (!inherited) return inherited.error();
      auto bound = localAddress(inherited->get());
      if (!bound) return bound.error();
      server->addresses_.push_back(*bound);
      server->proxyModes_.push_back(config.proxyProtocol);
      proxyListeners.push_back({*bound, config.proxyProtocol});
      listeners.push_back(std::move(*inherited));
    }
  }
  const bool defaults = config.listen.empty();
  std::vector<std::string> wanted = config.listen;
  if (defaults) wanted = {"0.0.0.0:2002", "[::]:2002"};
  if (!config.listenFds.empty()) wanted.clear();
  for (const std::string& text : wanted) {
    auto spec = parseListenSpec(text);
    if (!spec) return spec.error();
    const SocketAddress* address = &spec->address;
    auto fd = listenOn(*address, config.backlog, config.reusePort);
    if (!fd) {
      int code = fd.error().code.value();
      if (defaults && address->family() == AF_INET6 &&
          (code == EAFNOSUPPORT || code == EADDRNOTAVAIL)) {
        spdlog::warn("no IPv6 on this host ({}); listening on IPv4 only", fd.error().message());
        continue;
      }
      return fd.error();
    }
    if (limits.tcpKeepalive.count() > 0) {
      if (auto kept = setKeepAlive(fd->get(), static_cast<int>(limits.tcpKeepalive.count()));
          !kept) {
        return kept.error();
      }
    }
    auto bound = localAddress(fd->get());
    if (!bound) return bound.error();
    server->addresses_.push_back(*bound);
    server->proxyModes_.push_back(spec->proxy.value_or(config.proxyProtocol));
    proxyListeners.push_back({*bound, server->proxyModes_.back()});
    listeners.push_back(std::move(*fd));
  }

  auto backend = makeBackend(config.backend);
  if (!backend) return backend.error();

  // One ring made here proves that the workers can make theirs; kAuto falls back to send(2).
  server->replySend_ = ReplySend::kSend;
  if (config.replySend != ReplySend::kSend) {
    if (auto ring = SendRing::create()) {
      server->replySend_ = ReplySend::kIoUring;
    } else if (config.replySend == ReplySend::kIoUring) {
      return ring.error();
    } else {
      spdlog::info("workers send replies with send(2): {}", ring.error().message());
    }
  }

  ReactorLimits reactorLimits;
  reactorLimits.maxConnections = limits.maxConnections;
  reactorLimits.deadlines.idleMs = limits.idleTimeout.count();
  reactorLimits.deadlines.requestMs = limits.requestTimeout.count();
  reactorLimits.deadlines.softMs = limits.outputSoftLimit != 0 ? limits.outputSoftTime.count() : 0;
  reactorLimits.maxBuffered = limits.maxBuffered;
  server->reactor_ =
      std::make_unique<Reactor>(std::move(*backend), std::move(listeners), server->config_.protocol,
                                server->queue_, server->stats_, config.drainTimeout, reactorLimits);
  server->reactor_->requireProxyHeaders(std::move(proxyListeners));
  server->pool_ =
      std::make_unique<WorkerPool>(server->queue_, server->config_.workers,
                                   server->replySend_ == ReplySend::kIoUring, config.timeRequests,
                                   config.workerPolicy);
  return server;
}

std::string_view Server::backendName() const noexcept {
  return reactor_->backendName();
}

size_t Server::workerCount() const noexcept {
  return pool_->size();
}

Result<void> Server::run() {
  Result<void> result = reactor_->run();
  // Every connection is closed (or, after a fatal loop error, aborted when the reactor goes); the
  // strands still queued see that and return at once.
  pool_->stop();
  return result;
}

void Server::stop() noexcept {
  reactor_->stop();
}

std::span<const WorkerStats> Server::workerStats() const noexcept {
  return pool_->workerStats();
}

bool Server::draining() const noexcept {
  return reactor_->stopping();
}

uint64_t Server::loopRounds() const noexcept {
  return reactor_->rounds();
}

void Server::nudgeLoop() noexcept {
  reactor_->nudge();
}

bool Server::accepting() const noexcept {
  return reactor_->accepting();
}

}  // namespace reverb
