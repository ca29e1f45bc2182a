#include "reverbd/service_manager.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

#if REVERB_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace reverb {

bool serviceManagerSupported() noexcept {
  return REVERB_HAVE_SYSTEMD != 0;
}

Result<std::vector<int>> inheritedListeners() {
#if REVERB_HAVE_SYSTEMD
  // unset_environment = 1: a child of reverbd must not believe the sockets are its own.
  int n = sd_listen_fds(1);
  if (n < 0) return Error{std::error_code(-n, std::system_category()), "sd_listen_fds"};
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) fds.push_back(SD_LISTEN_FDS_START + i);
  return fds;
#else
  if (std::getenv("LISTEN_FDS") != nullptr) {
    return makeError(std::errc::not_supported,
                     "the service manager passed listening sockets (LISTEN_FDS), but this reverbd "
                     "was built without systemd support (meson -Dsystemd=enabled, libsystemd-dev)");
  }
  return std::vector<int>{};
#endif
}

void notifyServiceManager(std::string_view state) noexcept {
#if REVERB_HAVE_SYSTEMD
  const std::string text(state);
  (void)sd_notify(0, text.c_str());
#else
  (void)state;
#endif
}

Watchdog::Watchdog(std::function<uint64_t()> rounds, std::function<void()> nudge) {
#if REVERB_HAVE_SYSTEMD
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  period_ = std::chrono::microseconds(usec / 3);
  spdlog::debug("watchdog: pinging every {} ms while the event loop answers",
                period_.count() / 1000);
  thread_ = std::thread([this, rounds = std::move(rounds), nudge = std::move(nudge)]() mutable {
    run(std::move(rounds), std::move(nudge));
  });
#else
  (void)rounds;
  (void)nudge;
#endif
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  wake_.notifyAll();
  thread_.join();
}

void Watchdog::run(std::function<uint64_t()> rounds, std::function<void()> nudge) {
  // The first ping goes out at once: the loop has just been built and is about to run.
  uint64_t seen = rounds();
  notifyServiceManager("WATCHDOG=1");
  nudge();
  MutexLock lock(mu_);
  while (!wake_.waitFor(mu_, period_, [this]() REVERB_REQUIRES(mu_) { return stop_; })) {
    const uint64_t now = rounds();
    if (now != seen) {
      notifyServiceManager("WATCHDOG=1");
    } else {
      spdlog::warn("watchdog: the event loop has not run since the last check; no ping");
    }
    seen = now;
    nudge();
  }
}

}  // namespace reverb
