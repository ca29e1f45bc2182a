// reverbd and the service manager (systemd): socket activation, readiness and stop notifications,
// and the watchdog. Built on libsystemd (sd_listen_fds, sd_notify, sd_watchdog_enabled) when the
// meson feature `systemd` found it; without it, inheritedListeners() refuses sockets passed by a
// service manager and the rest does nothing.
//
// The notifications follow sd_notify(3): READY=1 (with STATUS=) once the listeners are bound,
// RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 when a drain starts, and WATCHDOG=1
// while the reactor answers, when the manager set WATCHDOG_USEC.
//
// Threading: inheritedListeners() from main before any thread starts (it unsets LISTEN_FDS);
// notify() is thread-safe; a Watchdog runs its own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"

namespace reverb {

// Whether this build talks to a service manager (the meson feature `systemd`).
bool serviceManagerSupported() noexcept;

// The listening sockets the service manager passed (LISTEN_FDS, for this PID), from fd 3 on;
// empty when none were. Fails when some were passed but this build cannot take them.
Result<std::vector<int>> inheritedListeners();

// Sends `state` ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET; does nothing without one. Thread-safe.
void notifyServiceManager(std::string_view state) noexcept;

// Watchdog: when the service manager asked for keep-alive pings (WATCHDOG_USEC, for this PID),
// a thread that sends WATCHDOG=1 every third of that interval, but only while the event loop is
// alive: each tick nudges the loop (one wake-up) and the next tick pings only if the loop's round
// count has moved since. A stuck reactor therefore stops the pings, and systemd restarts the
// service after WatchdogSec. Ownership: owns its thread. Threading: construct and destroy on one
// thread; the functions run on the watchdog's thread.
class Watchdog {
 public:
  // `rounds`: a counter the loop advances; `nudge`: makes the loop run a round. Does nothing (no
  // thread) when no watchdog was asked for.
  Watchdog(std::function<uint64_t()> rounds, std::function<void()> nudge);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // The ping interval, or zero when there is no watchdog.
  std::chrono::microseconds period() const noexcept { return period_; }

 private:
  void run(std::function<uint64_t()> rounds, std::function<void()> nudge) REVERB_EXCLUDES(mu_);

  std::chrono::microseconds period_{0};
  Mutex mu_;
  CondVar wake_;
  bool stop_ REVERB_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace reverb
