// reverb-load merge, in-process: a histogram's mergeable form (buckets + summary) restores it
// exactly; a --json document reads back into the same report; merging adds counts and
// histograms (percentiles of all requests together, never averaged) and refuses unlike runs.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "load/histogram.h"
#include "load/merge.h"
#include "load/report.h"

namespace reverb::load {
namespace {

// A run as reverb-load would describe it, with `latencies` (ns) recorded.
RecordedRun makeRun(const std::string& source, uint64_t base, uint64_t spread, int seed) {
  RecordedRun r;
  r.source = source;
  r.run.config.target = *parseAddress("127.0.0.1:2002");
  r.run.config.connections = 10;
  r.run.config.threads = 1;
  r.run.framing = Framing::kLine;
  r.run.unit = Unit::kByte;
  r.run.payload.sizeMin = r.run.payload.sizeMax = 16;
  r.run.poolSize = 1024;
  r.run.meanRequestBytes = 17;
  r.run.meanReplyBytes = 17;
  r.run.machine.nproc = 2;
  r.run.machine.kernel = "Linux test";
  r.run.argv = {"reverb-load", "--framing", "line"};
  r.report.seconds = 2.0;
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> tail(1.0 / static_cast<double>(spread));
  for (int i = 0; i < 20000; ++i) {
    r.report.latency.record(base + static_cast<uint64_t>(tail(rng)));
    if (i % 10 == 0) r.report.connectLatency.record(base / 2 + static_cast<uint64_t>(tail(rng)));
  }
  r.report.counters.requests = 20000;
  r.report.counters.completedAll = 20500;
  r.report.counters.connections = 10;
  r.report.counters.connectionsAll = 10;
  r.report.counters.bytesSent = r.report.counters.bytesReceived = 20000 * 17;
  r.report.cpu.user = 0.25;
  r.report.cpu.system = 0.5;
  r.report.machineBusy = 0.75;
  return r;
}

TEST(LoadMerge, AHistogramRestoresExactlyFromItsBuckets) {
  Histogram h;
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> values(10, 2);
  for (int i = 0; i < 50000; ++i) h.record(static_cast<uint64_t>(values(rng)));
  h.record(Histogram::kDefaultHighest * 2);  // clamped
  Histogram back;
  ASSERT_TRUE(back.restore(h.buckets(), h.summary()));
  for (double p : {0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    EXPECT_EQ(back.valueAtPercentile(p), h.valueAtPercentile(p)) << p;
  }
  EXPECT_EQ(back.count(), h.count());
  EXPECT_EQ(back.min(), h.min());
  EXPECT_EQ(back.max(), h.max());
  EXPECT_EQ(back.sum(), h.sum());
  EXPECT_EQ(back.clampedCount(), 1u);

  // A bucket that is not the start of one of this layout's ranges, or counts that do not add up,
  // are refused (and leave the histogram empty).
  std::vector<Histogram::Bucket> buckets = h.buckets();
  std::vector<Histogram::Bucket> shifted = buckets;
  shifted.back().lowest += 1;
  EXPECT_FALSE(back.restore(shifted, h.summary()));
  EXPECT_EQ(back.count(), 0u);
  Histogram::Summary wrong = h.summary();
  wrong.count += 1;
  EXPECT_FALSE(back.restore(buckets, wrong));
}

TEST(LoadMerge, AJsonDocumentReadsBackIntoTheSameReport) {
  RecordedRun run = makeRun("a.json", 40'000, 20'000, 1);
  run.report.counters.errors[1] = 3;  // reset
  run.report.counters.mismatches = 2;
  const std::string json = formatJson(run.run, run.report);
  auto back = readRecordedRun(json, "a.json");
  ASSERT_TRUE(back) << back.error().context;
  // Everything the table shows is the same.
  EXPECT_EQ(formatTable(back->run, back->report), formatTable(run.run, run.report));
  // And the JSON written from it again, but for the command line.
  EXPECT_EQ(back->report.latency.buckets().size(), run.report.latency.buckets().size());
  EXPECT_EQ(back->report.connectLatency.summary().sum, run.report.connectLatency.summary().sum);
  EXPECT_EQ(back->report.counters.connectionsAll, 10u);
}

TEST(LoadMerge, MergingAddsCountsAndHistogramsNeverPercentiles) {
  RecordedRun fast = makeRun("fast.json", 20'000, 5'000, 1);
  RecordedRun slow = makeRun("slow.json", 200'000, 100'000, 2);
  // Through JSON, as `reverb-load merge` reads them.
  auto a = readRecordedRun(formatJson(fast.run, fast.report), "fast.json");
  auto b = readRecordedRun(formatJson(slow.run, slow.report), "slow.json");
  ASSERT_TRUE(a && b);
  auto merged = mergeRuns({*a, *b});
  ASSERT_TRUE(merged) << merged.error().context;
  const LoadReport& m = merged->report;
  EXPECT_EQ(m.counters.requests, 40000u);
  EXPECT_EQ(m.counters.completedAll, 41000u);
  EXPECT_EQ(m.latency.count(), 40000u);
  EXPECT_EQ(merged->run.config.connections, 20);
  EXPECT_EQ(merged->run.config.threads, 2);
  EXPECT_DOUBLE_EQ(m.cpu.user, 0.5);
  // The merged p99 is the p99 of all the values together: the histograms' own merge.
  Histogram all = fast.report.latency;
  ASSERT_TRUE(all.merge(slow.report.latency));
  for (double p : {50.0, 99.0, 99.9}) {
    EXPECT_EQ(m.latency.valueAtPercentile(p), all.valueAtPercentile(p)) << p;
  }
  const uint64_t p99 = m.latency.valueAtPercentile(99);
  EXPECT_GE(p99, fast.report.latency.valueAtPercentile(99));
  EXPECT_LE(p99, slow.report.latency.valueAtPercentile(99));
  // Averaging the two p99s would give a figure no request had; the merge does not do that.
  const uint64_t averaged =
      (fast.report.latency.valueAtPercentile(99) + slow.report.latency.valueAtPercentile(99)) / 2;
  EXPECT_NE(p99, averaged);
  EXPECT_EQ(m.latency.min(), fast.report.latency.min());
  EXPECT_EQ(m.latency.max(), slow.report.latency.max());
  EXPECT_NE(mergeSummary({*a, *b}, *merged).find("2 runs added"), std::string::npos);
}

TEST(LoadMerge, UnlikeRunsAndForeignDocumentsAreRefused) {
  RecordedRun a = makeRun("a.json", 1000, 100, 1);
  RecordedRun b = makeRun("b.json", 1000, 100, 2);
  b.run.framing = Framing::kLength;
  auto refused = mergeRuns({a, b});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().context.find("framing"), std::string::npos) << refused.error().context;

  auto notJson = readRecordedRun("{\"tool\": ", "x.json");
  ASSERT_FALSE(notJson);
  EXPECT_NE(notJson.error().context.find("x.json: not a JSON document"), std::string::npos);
  auto old = readRecordedRun("{\"tool\": \"reverb-load\", \"requests\": 5}", "old.json");
  ASSERT_FALSE(old);
  EXPECT_NE(old.error().context.find("older reverb-load"), std::string::npos);
  // A tampered histogram: counts that do not add up to its count.
  std::string json = formatJson(a.run, a.report);
  const std::string key = "\"count\": 20000";
  const size_t at = json.find(key, json.find("\"histograms\""));
  ASSERT_NE(at, std::string::npos);
  json.replace(at, key.size(), "\"count\": 20001");
  auto tampered = readRecordedRun(json, "t.json");
  ASSERT_FALSE(tampered);
  EXPECT_NE(tampered.error().context.find("latency"), std::string::npos)
      << tampered.error().context;
}

}  // namespace
}  // namespace reverb::load
