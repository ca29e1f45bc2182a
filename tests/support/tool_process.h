// ToolProcess: runs a command-line tool (reverb-load) to completion as a child process and
// collects its exit status, stdout and stderr; kills it (by its PID) if it outlives a deadline.
// Built on ChildProcess (support/process.h). Threading: any one thread; no shared state.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace reverb::testing {

struct ToolResult {
  int exitCode = -1;     // exit status, or -1 if killed by a signal
  bool timedOut = false;  // the deadline passed and the child was killed
  std::string out;
  std::string err;
};

// Runs `path` with `args`; waits for it at most `deadline`.
ToolResult runTool(const std::string& path, const std::vector<std::string>& args,
                   std::chrono::seconds deadline);

// The value of environment variable `name`, or "" when unset.
std::string envOr(const char* name, const char* fallback = "");

}  // namespace reverb::testing
