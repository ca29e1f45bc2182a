// Histogram: percentiles agree with exact order statistics within the stated precision (the exact
// value x <= reported <= x + x/1024 at 3 significant digits) on known distributions; merge equals
// recording everything in one histogram; the layout matches HdrHistogram's.
#include "load/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace reverb {
namespace {

constexpr double kPercentiles[] = {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999};

// HdrHistogram's rank: the k-th smallest value, k = max(1, round(p/100 * n)).
uint64_t exactPercentile(const std::vector<uint64_t>& sorted, double percentile) {
  auto rank = static_cast<uint64_t>(std::llround(percentile / 100.0 * sorted.size()));
  rank = std::clamp<uint64_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void expectWithinPrecision(std::vector<uint64_t> values, const char* name) {
  Histogram histogram;
  for (uint64_t v : values) histogram.record(v);
  std::sort(values.begin(), values.end());
  ASSERT_EQ(histogram.count(), values.size());
  EXPECT_EQ(histogram.max(), values.back()) << name;
  EXPECT_EQ(histogram.min(), values.front()) << name;
  for (double p : kPercentiles) {
    uint64_t exact = exactPercentile(values, p);
    uint64_t reported = histogram.valueAtPercentile(p);
    EXPECT_GE(reported, exact) << name << " p" << p;
    EXPECT_LE(reported - exact, exact / 1024) << name << " p" << p << " exact " << exact;
  }
  EXPECT_EQ(histogram.valueAtPercentile(100.0), values.back()) << name;
}

TEST(HistogramTest, UniformNanosecondsToMilliseconds) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<uint64_t> dist(1, 5'000'000);
  std::vector<uint64_t> values(200'000);
  for (auto& v : values) v = dist(rng);
  expectWithinPrecision(values, "uniform");
}

TEST(HistogramTest, ExponentialLatencies) {
  std::mt19937_64 rng(2);
  std::exponential_distribution<double> dist(1.0 / 40'000.0);  // mean 40 us in ns
  std::vector<uint64_t> values(200'000);
  for (auto& v : values) v = static_cast<uint64_t>(dist(rng));
  expectWithinPrecision(values, "exponential");
}

TEST(HistogramTest, LogNormalWithLongTail) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> dist(10.0, 2.0);  // spans ns to seconds
  std::vector<uint64_t> values(300'000);
  for (auto& v : values) v = static_cast<uint64_t>(dist(rng));
  expectWithinPrecision(values, "lognormal");
}

TEST(HistogramTest, BimodalFastPathAndStalls) {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> fast(30'000.0, 3'000.0);
  std::normal_distribution<double> slow(200'000'000.0, 10'000'000.0);
  std::bernoulli_distribution stall(0.002);
  std::vector<uint64_t> values(500'000);
  for (auto& v : values) v = static_cast<uint64_t>(std::max(1.0, stall(rng) ? slow(rng) : fast(rng)));
  expectWithinPrecision(values, "bimodal");
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram histogram;
  for (uint64_t v = 0; v < 2048; ++v) histogram.record(v);
  for (uint64_t v = 0; v < 2048; ++v) {
    EXPECT_EQ(histogram.lowestEquivalent(v), v);
    EXPECT_EQ(histogram.highestEquivalent(v), v);
  }
  EXPECT_EQ(histogram.valueAtPercentile(50.0), 1023u);
  EXPECT_EQ(histogram.valueAtPercentile(0.0), 0u);
}

TEST(HistogramTest, RangeWidthsFollowHdrLayout) {
  Histogram histogram;
  // Bucket 1 starts at 2048 with width 2; each further power of two doubles the width.
  EXPECT_EQ(histogram.lowestEquivalent(2049), 2048u);
  EXPECT_EQ(histogram.highestEquivalent(2048), 2049u);
  EXPECT_EQ(histogram.lowestEquivalent(4100), 4100u);
  EXPECT_EQ(histogram.highestEquivalent(4100), 4103u);
  EXPECT_EQ(histogram.lowestEquivalent(1'000'000), 999'936u);
  EXPECT_EQ(histogram.highestEquivalent(1'000'000), 1'000'447u);
  for (uint64_t v : {3000ULL, 123'456ULL, 987'654'321ULL, 3'000'000'000'000ULL}) {
    EXPECT_LE(histogram.highestEquivalent(v) - histogram.lowestEquivalent(v), v / 1024) << v;
  }
}

TEST(HistogramTest, MergeEqualsRecordingTogether) {
  std::mt19937_64 rng(5);
  std::exponential_distribution<double> dist(1.0 / 100'000.0);
  Histogram a;
  Histogram b;
  Histogram all;
  for (int i = 0; i < 100'000; ++i) {
    auto v = static_cast<uint64_t>(dist(rng));
    (i % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  ASSERT_TRUE(a.merge(b));
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : kPercentiles) EXPECT_EQ(a.valueAtPercentile(p), all.valueAtPercentile(p)) << p;
}

TEST(HistogramTest, CountRangesRebuildTheSameHistogram) {
  // What --json writes for each step (forEachCount) and a reader rebuilds (recordCount): the same
  // counts, so the same percentiles; min and max come back as their ranges' lowest values.
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> dist(11.0, 1.5);
  Histogram original;
  for (int i = 0; i < 50000; ++i) original.record(static_cast<uint64_t>(dist(rng)));
  Histogram rebuilt;
  uint64_t ranges = 0;
  uint64_t previousHighest = 0;
  original.forEachCount([&](uint64_t lowest, uint64_t highest, uint64_t count) {
    EXPECT_GT(count, 0u);
    EXPECT_LE(lowest, highest);
    EXPECT_EQ(original.lowestEquivalent(highest), lowest);
    if (ranges > 0) {
      EXPECT_GT(lowest, previousHighest);  // lowest first, no overlap
    }
    previousHighest = highest;
    rebuilt.recordCount(lowest, count);
    ++ranges;
  });
  EXPECT_GT(ranges, 100u);
  EXPECT_EQ(rebuilt.count(), original.count());
  EXPECT_EQ(rebuilt.min(), original.lowestEquivalent(original.min()));
  EXPECT_EQ(rebuilt.max(), original.lowestEquivalent(original.max()));
  for (double p : kPercentiles) {
    if (p == 0.0 || p > 99.9) continue;  // these may fall in the lowest or highest range
    EXPECT_EQ(rebuilt.valueAtPercentile(p), original.valueAtPercentile(p)) << "p" << p;
  }
  // recordCount(v, n) is n record(v) calls.
  Histogram once;
  Histogram many;
  once.recordCount(123456, 7);
  for (int i = 0; i < 7; ++i) many.record(123456);
  EXPECT_EQ(once.count(), many.count());
  EXPECT_EQ(once.mean(), many.mean());
  EXPECT_EQ(once.valueAtPercentile(50), many.valueAtPercentile(50));
  once.recordCount(99, 0);
  EXPECT_EQ(once.count(), 7u);
  EXPECT_EQ(once.min(), 123456u);
}

TEST(HistogramTest, MergeRefusesDifferentLayouts) {
  Histogram a(3'600'000'000'000ULL, 3);
  Histogram b(1'000'000'000ULL, 3);
  Histogram c(3'600'000'000'000ULL, 2);
  b.record(5);
  EXPECT_FALSE(a.merge(b));
  EXPECT_FALSE(a.merge(c));
  EXPECT_EQ(a.count(), 0u);
}

TEST(HistogramTest, ValuesAboveRangeAreClampedButMaxIsExact) {
  Histogram histogram(1'000'000, 3);
  histogram.record(10);
  histogram.record(5'000'000);
  EXPECT_EQ(histogram.clampedCount(), 1u);
  EXPECT_EQ(histogram.max(), 5'000'000u);
  EXPECT_EQ(histogram.valueAtPercentile(100.0), 5'000'000u);
  EXPECT_GE(histogram.valueAtPercentile(99.0), histogram.lowestEquivalent(1'000'000));
}

TEST(HistogramTest, ResetForgetsEverything) {
  Histogram histogram;
  histogram.record(42);
  histogram.reset();
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.valueAtPercentile(50.0), 0u);
  EXPECT_EQ(histogram.max(), 0u);
  EXPECT_EQ(histogram.min(), 0u);
}

TEST(HistogramTest, OtherPrecisionsKeepTheirBound) {
  for (int digits = 1; digits <= 4; ++digits) {
    Histogram histogram(3'600'000'000'000ULL, digits);
    // Sub-bucket half count: 2^(ceil(log2(2 * 10^digits)) - 1); widths are value / that at most.
    uint64_t limit = 2;
    for (int i = 0; i < digits; ++i) limit *= 10;
    uint64_t half = std::bit_ceil(limit) / 2;
    for (uint64_t v : {7ULL, 1'234ULL, 56'789ULL, 98'765'432ULL}) {
      EXPECT_LE(histogram.highestEquivalent(v) - histogram.lowestEquivalent(v), v / half)
          << digits << " digits, " << v;
      // Relative error bound implied by `digits` significant digits.
      EXPECT_LE(static_cast<double>(histogram.highestEquivalent(v) - v), v * std::pow(10.0, -digits))
          << digits << " digits, " << v;
    }
  }
}

}  // namespace
}  // namespace reverb
