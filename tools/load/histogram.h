// Histogram: a log-linear histogram of non-negative integers (nanoseconds, in reverb-load) laid out
// as HdrHistogram lays out its counts, so percentiles keep a fixed number of significant decimal
// digits over the whole range at a fixed memory cost. Pure: no I/O, no shared state.
// Ownership: owns its counts array (allocated once, in the constructor). Threading: any one thread
// at a time; each load thread records into its own and the results are merged at the end.
//
// Precision: with D significant digits (1 to 5), every value below 2 * 10^D (rounded up to a power
// of two, 2048 for D = 3) has its own count; above that, a count covers a range of width at most
// value / 2^(ceil(log2(2 * 10^D)) - 1), i.e. value / 1024 for D = 3. valueAtPercentile() returns
// the highest value of the range holding the exact percentile value x, so x <= result <= x + x/1024.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace reverb {

class Histogram {
 public:
  // Tracks values in [0, highestTrackable]; larger values are counted as highestTrackable (and
  // counted in clampedCount()), while max() keeps the exact largest value recorded.
  // highestTrackable must be at least 2 * 2^ceil(log2(2 * 10^significantDigits)).
  explicit Histogram(uint64_t highestTrackable = kDefaultHighest, int significantDigits = 3);

  // One hour in nanoseconds: any latency a load run can observe.
  static constexpr uint64_t kDefaultHighest = 3'600'000'000'000ULL;

  // Records one value. No allocation, no branch mispredicted in the common case.
  void record(uint64_t value) noexcept {
    if (value > highest_) [[unlikely]] {
      ++clamped_;
      if (value > max_) max_ = value;
      value = highest_;
    }
    ++counts_[countsIndex(value)];
    ++total_;
    sum_ += value;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  // Adds other's counts to this one. Both must have been built with the same arguments; returns
  // false (and changes nothing) otherwise.
  bool merge(const Histogram& other) noexcept;

  // Forgets every value; keeps the memory.
  void reset() noexcept;

  uint64_t count() const noexcept { return total_; }
  // 0 when empty.
  uint64_t min() const noexcept { return total_ ? min_ : 0; }
  uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return total_ ? static_cast<double>(sum_) / total_ : 0.0; }
  uint64_t clampedCount() const noexcept { return clamped_; }
  uint64_t highestTrackable() const noexcept { return highest_; }

  // The value at `percentile` (0 to 100): the highest value equivalent to the k-th smallest
  // recorded value, k = max(1, round(percentile / 100 * count())), as HdrHistogram defines it.
  // percentile 100 returns max() exactly. Returns 0 when empty.
  uint64_t valueAtPercentile(double percentile) const noexcept;

  // The bounds of the count range that holds `value`.
  uint64_t lowestEquivalent(uint64_t value) const noexcept;
  uint64_t highestEquivalent(uint64_t value) const noexcept;

  // Records `count` values equal to `value` at once: how a histogram written out as its count
  // ranges (forEachCount) is read back. No allocation.
  void recordCount(uint64_t value, uint64_t count) noexcept;

  // Calls f(lowest, highest, count) for each count range that holds values, lowest first: the
  // histogram as a list another histogram of the same layout can rebuild with recordCount().
  template <typename F>
  void forEachCount(F&& f) const {
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] != 0) {
        const uint64_t value = valueFromIndex(i);
        f(lowestEquivalent(value), highestEquivalent(value), counts_[i]);
      }
    }
  }

  int significantDigits() const noexcept { return significantDigits_; }

  uint64_t sum() const noexcept { return sum_; }

  // One non-empty count range: its lowest value and how many recorded values it holds (what
  // forEachCount gives). The mergeable form reverb-load's --json carries: counts, never
  // percentiles, so histograms from several generators add up exactly (see restore()).
  struct Bucket {
    uint64_t lowest = 0;
    uint64_t count = 0;
  };
  // The non-empty ranges, lowest first (forEachCount, collected).
  std::vector<Bucket> buckets() const;
  // The figures buckets() cannot carry.
  struct Summary {
    uint64_t count = 0;
    uint64_t min = 0;  // as min(): 0 when empty
    uint64_t max = 0;
    uint64_t sum = 0;
    uint64_t clamped = 0;
  };
  Summary summary() const noexcept { return {total_, min(), max_, sum_, clamped_}; }
  // Replaces the contents with what buckets() and summary() of a histogram of the same layout
  // returned (another process's, read from its JSON). Returns false, leaving the histogram empty,
  // when a bucket is not the start of one of this layout's ranges (another layout wrote it) or the
  // bucket counts do not add up to summary.count.
  bool restore(std::span<const Bucket> buckets, const Summary& summary) noexcept;

  // Bytes of counts: what a copy or a merge touches.
  size_t memoryBytes() const noexcept { return counts_.size() * sizeof(uint64_t); }

 private:
  int bucketIndex(uint64_t value) const noexcept {
    return leadingZeroBase_ - std::countl_zero(value | subBucketMask_);
  }
  size_t countsIndex(uint64_t value) const noexcept {
    int bucket = bucketIndex(value);
    auto subBucket = static_cast<size_t>(value >> bucket);
    return (static_cast<size_t>(bucket + 1) << subBucketHalfMagnitude_) +
           (subBucket - subBucketHalfCount_);
  }
  uint64_t valueFromIndex(size_t index) const noexcept;

  uint64_t highest_;
  int significantDigits_;
  int subBucketHalfMagnitude_;  // log2(subBucketHalfCount_)
  size_t subBucketHalfCount_;
  uint64_t subBucketMask_;
  int leadingZeroBase_;
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  uint64_t clamped_ = 0;
};

}  // namespace reverb
