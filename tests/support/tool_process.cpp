#include "support/tool_process.h"

#include <cstdlib>

#include "support/process.h"

namespace reverb::testing {

std::string envOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

ToolResult runTool(const std::string& path, const std::vector<std::string>& args,
                   std::chrono::seconds deadline) {
  ToolResult result;
  auto child = ChildProcess::spawn({path, args});
  if (!child) {
    result.err = child.error().message();
    return result;
  }
  ChildProcess::Output output = child->collect(deadline);
  result.exitCode = output.status.signal == 0 ? output.status.code : -1;
  result.timedOut = output.timedOut;
  result.out = std::move(output.out);
  result.err = std::move(output.err);
  return result;
}

}  // namespace reverb::testing
