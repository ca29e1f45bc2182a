// Report: turns a LoadReport into the table reverb-load prints and the JSON it writes, and states
// the preflight facts (file limit, the connections/s ceiling ports and TIME_WAIT imply). Pure
// formatting apart from printTable's FILE*; thread-safe.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "load/load_run.h"
#include "load/payload.h"
#include "load/sweep.h"
#include "load/system_info.h"

namespace reverb::load {

// Everything about a run that is not a measured figure.
struct RunDescription {
  LoadConfig config;
  PayloadSpec payload;
  Framing framing = Framing::kLine;
  Unit unit = Unit::kByte;
  size_t poolSize = 0;
  double meanRequestBytes = 0;
  double meanReplyBytes = 0;
  std::vector<std::string> argv;
  MachineInfo machine;
  KernelLimits limits;
  // A sweep's whole run: what it was ("open loop in 5 steps (--rate-steps)"), said in place of the
  // mode; config.rate is then the steps' asked rates averaged over their windows.
  std::string sweep;
};

// True when the run found nothing wrong: no mismatch, no error, not stalled.
bool runPassed(const LoadReport& report) noexcept;

// The connections/s that local ports and TIME_WAIT allow for these settings, or nullopt when they
// set no limit (--close rst leaves no TIME_WAIT behind).
std::optional<double> connectCeiling(const LoadConfig& config, const KernelLimits& limits) noexcept;

// Preflight lines for stderr: file limit, and in connect mode the ceiling and how it was derived.
std::string preflightText(const LoadConfig& config, const KernelLimits& limits, long fileLimitBefore);

// The human table for stdout.
std::string formatTable(const RunDescription& run, const LoadReport& report);

// The table of a sweep's steps for stdout (run.sweep says what the sweep was), with the search's
// answer and the steps that support it; reverb-load prints it above the whole run's formatTable.
std::string formatSteps(const RunDescription& run, const SweepReport& sweep);

// The --json document: every figure plus metadata, and the time series ("timeseries"). With a
// sweep, `report` is its whole run and the document adds "steps" (and "slo" for a search), the
// time series then being every step's. Keys: see README "## reverb-load".
std::string formatJson(const RunDescription& run, const LoadReport& report,
                       const SweepReport* sweep = nullptr);

// "12.3 us"-style rendering of a nanosecond figure, 3 significant digits.
std::string formatMicros(uint64_t nanos);

// argv joined into one line a shell would accept (single quotes where needed).
std::string shellJoin(const std::vector<std::string>& argv);

}  // namespace reverb::load
