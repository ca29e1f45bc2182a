#include "load/interval_log.h"

#include <algorithm>
#include <cmath>

namespace reverb::load {

IntervalLog::IntervalLog(int threads, int64_t intervalNanos)
    : threads_(threads), intervalNanos_(std::max<int64_t>(intervalNanos, 1)) {}

void IntervalLog::add(size_t index, const IntervalShare& share, const Histogram* latency) {
  MutexLock lock(mutex_);
  Pending& p = pending_[index];
  p.sum.requests += share.requests;
  p.sum.errors += share.errors;
  p.sum.mismatches += share.mismatches;
  if (latency != nullptr && latency->count() > 0) {
    if (!p.latency)
      p.latency =
          std::make_unique<Histogram>(latency->highestTrackable(), latency->significantDigits());
    p.latency->merge(*latency);
  }
  ++p.handedIn;
  if (p.handedIn + retiredBefore(index) >= threads_) {
    complete(index, p);
    pending_.erase(index);
  }
}

void IntervalLog::retire(size_t lastIndex, bool handedAny) {
  MutexLock lock(mutex_);
  retiredAfter_.push_back(handedAny ? static_cast<long long>(lastIndex) : -1);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.handedIn + retiredBefore(it->first) >= threads_) {
      complete(it->first, it->second);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

int IntervalLog::retiredBefore(size_t index) const {
  int n = 0;
  for (long long last : retiredAfter_) {
    if (last < static_cast<long long>(index)) ++n;
  }
  return n;
}

void IntervalLog::complete(size_t index, Pending& p) {
  IntervalFigures& f = done_[index];
  f.requests = p.sum.requests;
  f.errors = p.sum.errors;
  f.mismatches = p.sum.mismatches;
  if (p.latency) {
    f.p50Nanos = p.latency->valueAtPercentile(50.0);
    f.p99Nanos = p.latency->valueAtPercentile(99.0);
    f.maxNanos = p.latency->max();
  }
}

std::vector<IntervalFigures> IntervalLog::finish(double windowSeconds) {
  MutexLock lock(mutex_);
  for (auto& [index, p] : pending_) complete(index, p);
  pending_.clear();
  const double length = static_cast<double>(intervalNanos_) / 1e9;
  size_t count =
      windowSeconds > 0 ? static_cast<size_t>(std::ceil(windowSeconds / length - 1e-9)) : 0;
  // A reply counted just as an interrupted window closed may fall past its end: keep it, so the
  // series always adds up to the run's totals.
  if (!done_.empty()) count = std::max(count, done_.rbegin()->first + 1);
  std::vector<IntervalFigures> series(count);
  for (size_t i = 0; i < count; ++i) {
    auto it = done_.find(i);
    if (it != done_.end()) series[i] = it->second;
    series[i].start = static_cast<double>(i) * length;
    series[i].seconds = std::clamp(windowSeconds - series[i].start, 0.0, length);
  }
  return series;
}

}  // namespace reverb::load
