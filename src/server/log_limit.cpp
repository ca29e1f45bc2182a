#include "server/log_limit.h"

#include <fmt/format.h>

namespace reverb {

LogLimiter::Verdict LogLimiter::check(Clock::time_point now) noexcept {
  MutexLock lock(mu_);
  if (!started_ || now - windowStart_ >= interval_) {
    started_ = true;
    windowStart_ = now;
    written_ = 0;
  }
  if (written_ >= burst_) {
    if (held_ == 0) heldSince_ = windowStart_;
    ++held_;
    suppressedTotal_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  ++written_;
  Verdict v;
  v.log = true;
  v.suppressed = held_;
  if (held_ > 0) v.over = std::chrono::ceil<std::chrono::seconds>(now - heldSince_);
  held_ = 0;
  return v;
}

std::string LogLimiter::more(const Verdict& v) {
  if (v.suppressed == 0) return {};
  return fmt::format(" (... {} more in the last {} s)", v.suppressed, v.over.count());
}

}  // namespace reverb
