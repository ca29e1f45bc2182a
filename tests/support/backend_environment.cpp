#include "support/backend_environment.h"

#include <chrono>
#include <optional>
#include <sstream>

#include "support/tool_process.h"

namespace reverb::testing {

std::string testBackend() {
  return envOr("REVERB_TEST_BACKEND");
}

bool backendsRequired() {
  return envOr("REVERB_REQUIRE_BACKENDS") == "1";
}

bool skipUnavailable(const std::string& backend, bool available, const std::string& reason) {
  if (available) return false;
  // GTEST_SKIP() and FAIL() without their `return`, so the caller decides how to end the test.
  const bool required = backendsRequired();
  const std::string why = required ? "the " + backend +
                                         " backend is built but this kernel refuses it (" + reason +
                                         "), and REVERB_REQUIRE_BACKENDS=1 forbids skipping it"
                                   : "the " + backend + " backend is unavailable here: " + reason;
  ::testing::internal::AssertHelper(
      required ? ::testing::TestPartResult::kFatalFailure : ::testing::TestPartResult::kSkip,
      __FILE__, __LINE__, why.c_str()) = ::testing::Message();
  return true;
}

bool skipIfTestBackendUnavailable() {
  const std::string backend = testBackend();
  if (backend.empty()) return false;
  // reverbd's own probe decides, through the line `--list-backends` prints for the backend:
  // "NAME: available" or "NAME: unavailable (REASON)". Asked once per test program.
  static const std::optional<std::string> state = [&]() -> std::optional<std::string> {
    ToolResult listed = runTool(envOr("REVERBD"), {"--list-backends"}, std::chrono::seconds(20));
    std::istringstream lines(listed.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(backend + ": ", 0) == 0) return line.substr(backend.size() + 2);
    }
    return std::nullopt;
  }();
  if (!state) {
    ADD_FAILURE() << "reverbd --list-backends does not list " << backend;
    return true;
  }
  return skipUnavailable(backend, *state == "available", *state);
}

}  // namespace reverb::testing
