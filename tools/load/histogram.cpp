#include "load/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace reverb {
namespace {

[[noreturn]] void invalidLayout(const char* why) {
  std::fprintf(stderr, "Histogram: %s\n", why);
  std::abort();
}

}  // namespace

Histogram::Histogram(uint64_t highestTrackable, int significantDigits)
    : highest_(highestTrackable), significantDigits_(significantDigits) {
  if (significantDigits < 1 || significantDigits > 5) invalidLayout("significant digits must be 1 to 5");
  // The largest value that must keep single-unit resolution, 2 * 10^D, sets the sub-bucket count.
  uint64_t singleUnitLimit = 2;
  for (int i = 0; i < significantDigits; ++i) singleUnitLimit *= 10;
  const int subBucketMagnitude = std::bit_width(singleUnitLimit - 1);  // ceil(log2)
  const uint64_t subBucketCount = uint64_t{1} << subBucketMagnitude;
  subBucketHalfMagnitude_ = subBucketMagnitude - 1;
  subBucketHalfCount_ = subBucketCount / 2;
  subBucketMask_ = subBucketCount - 1;
  leadingZeroBase_ = 64 - subBucketHalfMagnitude_ - 1;
  if (highestTrackable < 2 * subBucketCount) invalidLayout("highest trackable value is too small");

  // Bucket b covers [2^b * subBucketHalfCount, 2^b * subBucketCount) (bucket 0 from 0); enough
  // buckets to reach highestTrackable.
  size_t buckets = 1;
  uint64_t smallestUntrackable = subBucketCount;
  while (smallestUntrackable <= highestTrackable) {
    if (smallestUntrackable > UINT64_MAX / 2) {
      ++buckets;
      break;
    }
    smallestUntrackable <<= 1;
    ++buckets;
  }
  counts_.assign((buckets + 1) * subBucketHalfCount_, 0);
}

bool Histogram::merge(const Histogram& other) noexcept {
  if (other.highest_ != highest_ || other.significantDigits_ != significantDigits_) return false;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  sum_ += other.sum_;
  clamped_ += other.clamped_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  return true;
}

void Histogram::recordCount(uint64_t value, uint64_t count) noexcept {
  if (count == 0) return;
  if (value > highest_) {
    clamped_ += count;
    max_ = std::max(max_, value);
    value = highest_;
  }
  counts_[countsIndex(value)] += count;
  total_ += count;
  sum_ += value * count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
  sum_ = 0;
  clamped_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
}

std::vector<Histogram::Bucket> Histogram::buckets() const {
  std::vector<Bucket> out;
  forEachCount([&](uint64_t lowest, uint64_t, uint64_t count) { out.push_back({lowest, count}); });
  return out;
}

bool Histogram::restore(std::span<const Bucket> buckets, const Summary& summary) noexcept {
  reset();
  uint64_t total = 0;
  for (const Bucket& b : buckets) {
    const size_t index = countsIndex(b.lowest);
    if (index >= counts_.size() || lowestEquivalent(b.lowest) != b.lowest) {
      reset();
      return false;
    }
    counts_[index] += b.count;
    total += b.count;
  }
  if (total != summary.count) {
    reset();
    return false;
  }
  total_ = summary.count;
  sum_ = summary.sum;
  clamped_ = summary.clamped;
  min_ = summary.count ? summary.min : UINT64_MAX;
  max_ = summary.max;
  return true;
}

uint64_t Histogram::valueFromIndex(size_t index) const noexcept {
  auto bucket = static_cast<int>(index >> subBucketHalfMagnitude_) - 1;
  uint64_t subBucket = (index & (subBucketHalfCount_ - 1)) + subBucketHalfCount_;
  if (bucket < 0) {
    subBucket -= subBucketHalfCount_;
    bucket = 0;
  }
  return subBucket << bucket;
}

uint64_t Histogram::lowestEquivalent(uint64_t value) const noexcept {
  int bucket = bucketIndex(value);
  return (value >> bucket) << bucket;
}

uint64_t Histogram::highestEquivalent(uint64_t value) const noexcept {
  int bucket = bucketIndex(value);
  return lowestEquivalent(value) + (uint64_t{1} << bucket) - 1;
}

uint64_t Histogram::valueAtPercentile(double percentile) const noexcept {
  if (total_ == 0) return 0;
  percentile = std::clamp(percentile, 0.0, 100.0);
  if (percentile >= 100.0) return max_;
  auto rank = static_cast<uint64_t>(std::llround(percentile / 100.0 * static_cast<double>(total_)));
  rank = std::clamp<uint64_t>(rank, 1, total_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highestEquivalent(valueFromIndex(i)), max_);
  }
  return max_;
}

}  // namespace reverb
