// Merge: `reverb-load merge`, the report of several load generators that ran at the same time
// (processes on one machine, or several machines) against one service. Each generator's --json
// carries its counters and its histograms in mergeable form (counts per range, not percentiles);
// merging adds the counters and the histogram counts, so the merged percentiles are those of all
// the requests together. Percentiles are never averaged: the mean of two p99s is not a p99.
//
// Rates are the summed counts over the longest of the runs' windows, which is right when the
// generators ran over the same period (start them together, with the same --warmup and
// --duration). Pure apart from nothing: the caller reads the files. Threading: any one thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "load/load_run.h"
#include "load/report.h"

namespace reverb::load {

// One run as read back from its --json.
struct RecordedRun {
  std::string source;  // the file it came from, for messages
  RunDescription run;
  LoadReport report;
};

// Reads a reverb-load --json document. Fails with a sentence naming `source` and what is missing
// or malformed; a document without "histograms" (an older reverb-load) cannot be merged.
Result<RecordedRun> readRecordedRun(std::string_view json, std::string source);

// Adds the runs up. They must be alike (mode, framing, unit, open or closed loop): a sum of
// unlike runs would describe no load at all, so that is an error naming the first difference.
// Threads, connections and asked rates add up; payload and target are the first run's.
Result<RecordedRun> mergeRuns(const std::vector<RecordedRun>& runs);

// The line `reverb-load merge` prints above the usual table.
std::string mergeSummary(const std::vector<RecordedRun>& runs, const RecordedRun& merged);

}  // namespace reverb::load
