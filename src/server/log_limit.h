// LogLimiter: rate-limits one kind of log line, the way the Linux kernel's ratelimit state does
// (DEFINE_RATELIMIT_STATE, "N callbacks suppressed"). At most `burst` lines go out per `interval`;
// the rest are counted, and the first line let through after the interval says how many were held
// back ("... 1234 more in the last 10 s"). Nothing ticks: the summary rides on the next line of the
// same kind, and reverb_log_messages_suppressed_total counts every suppressed line at once.
//
// Use one static limiter per call site, checked before the line is formatted:
//
//   static LogLimiter limiter;
//   if (auto v = limiter.check(); v.log) spdlog::warn("accept: ...{}", LogLimiter::more(v));
//
// Ownership: none. Threading: thread-safe (a small mutex, taken only on the warning path, never
// per request).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "base/mutex.h"

namespace reverb {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  struct Verdict {
    bool log = false;             // write this line
    uint64_t suppressed = 0;      // lines held back since the last one written
    std::chrono::seconds over{};  // the time those were held back in, rounded up
  };

  explicit LogLimiter(std::chrono::seconds interval = std::chrono::seconds(10),
                      uint32_t burst = 5) noexcept
      : interval_(interval), burst_(burst) {}
  LogLimiter(const LogLimiter&) = delete;
  LogLimiter& operator=(const LogLimiter&) = delete;

  // Thread-safe. Decides about one line at `now`.
  Verdict check(Clock::time_point now = Clock::now()) noexcept REVERB_EXCLUDES(mu_);

  // " (... N more in the last S s)" when v suppressed lines, else "": for the end of the line.
  static std::string more(const Verdict& v);

  // Lines suppressed by every limiter of the process so far. Thread-safe.
  static uint64_t suppressedTotal() noexcept {
    return suppressedTotal_.load(std::memory_order_relaxed);
  }

 private:
  const std::chrono::seconds interval_;
  const uint32_t burst_;

  Mutex mu_;
  bool started_ REVERB_GUARDED_BY(mu_) = false;
  Clock::time_point windowStart_ REVERB_GUARDED_BY(mu_);
  uint32_t written_ REVERB_GUARDED_BY(mu_) = 0;  // lines written in this window
  uint64_t held_ REVERB_GUARDED_BY(mu_) = 0;     // lines suppressed since the last one written
  Clock::time_point heldSince_ REVERB_GUARDED_BY(mu_);  // the window the first of them fell in

  static inline std::atomic<uint64_t> suppressedTotal_{0};
};

}  // namespace reverb
