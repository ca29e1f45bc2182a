// Which I/O backend the integration tests run reverbd on, and what happens when this kernel
// cannot run it. meson registers every test that starts reverbd once per backend the build has,
// with REVERB_TEST_BACKEND set to its name; ServerProcess passes `--backend NAME` to reverbd.
//
// A backend the kernel refuses (io_uring under seccomp, in a container, with
// kernel.io_uring_disabled) is skipped with the reason printed, like liburing's T_EXIT_SKIP. On the
// project's own machines it must not be: scripts/test sets REVERB_REQUIRE_BACKENDS=1, which turns
// that skip into a failure, so CI can never silently lose a backend.
// Threading: the test's main thread.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace reverb::testing {

// REVERB_TEST_BACKEND, or "" when the tests run on reverbd's default backend.
std::string testBackend();

// Whether a backend the build has may be skipped when the kernel refuses it.
bool backendsRequired();

// Skips (or, with REVERB_REQUIRE_BACKENDS=1, fails) the calling test when `available` is false.
// Returns true when the test must end: `if (skipUnavailable(name, ok, reason)) return;`.
bool skipUnavailable(const std::string& backend, bool available, const std::string& reason);

// skipUnavailable for the test backend, as `$REVERBD --list-backends` reports it (asked once per
// program). Returns false at once when REVERB_TEST_BACKEND is unset.
bool skipIfTestBackendUnavailable();

// A fixture for tests that start reverbd: skips them on a backend this kernel refuses.
class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override { (void)skipIfTestBackendUnavailable(); }
};

}  // namespace reverb::testing
