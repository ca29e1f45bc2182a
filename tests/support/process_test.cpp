// ChildProcess (support/process.h), the one way tests start a process: exit status and both
// pipes captured, a deadline that kills and reaps, RLIMIT_NOFILE applied in the child, exec
// failures reported as errors, and no child outliving its owner. Children are /bin/sh and
// /bin/sleep; the sleeps are the child's, never the test waiting for something to happen.
#include "support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>

namespace reverb::testing {
namespace {

using namespace std::chrono_literals;

ChildProcess spawnOrDie(SpawnOptions options) {
  auto child = ChildProcess::spawn(options);
  if (!child) {
    ADD_FAILURE() << child.error().message();
    std::abort();
  }
  return std::move(*child);
}

// True once `pid` names no process at all, not even a zombie: the child was reaped.
bool gone(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

TEST(ProcessTest, CapturesExitStatusStdoutAndStderr) {
  ChildProcess child =
      spawnOrDie({"/bin/sh", {"-c", "echo out; echo err >&2; exit 3"}, 0});
  ChildProcess::Output output = child.collect(20s);
  EXPECT_FALSE(output.timedOut);
  EXPECT_EQ(output.status.code, 3);
  EXPECT_EQ(output.status.signal, 0);
  EXPECT_EQ(output.out, "out\n");
  EXPECT_EQ(output.err, "err\n");
  EXPECT_TRUE(child.reaped());
  EXPECT_TRUE(gone(child.pid()));
}

TEST(ProcessTest, ReportsTheSignalThatEndedTheChild) {
  ChildProcess child = spawnOrDie({"/bin/sh", {"-c", "kill -TERM $$"}, 0});
  ChildProcess::Output output = child.collect(20s);
  EXPECT_EQ(output.status.signal, SIGTERM);
  EXPECT_EQ(output.status.code, -1);
  EXPECT_EQ(output.status.shellCode(), 128 + SIGTERM);
}

TEST(ProcessTest, DeadlineKillsAndReapsAChildThatOutlivesIt) {
  const auto start = std::chrono::steady_clock::now();
  ChildProcess child = spawnOrDie({"/bin/sleep", {"30"}, 0});
  ChildProcess::Output output = child.collect(1s);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(output.timedOut);
  EXPECT_EQ(output.status.signal, SIGKILL);
  EXPECT_GE(elapsed, 1s);
  EXPECT_LT(elapsed, 5s);
  EXPECT_TRUE(gone(child.pid()));
}

TEST(ProcessTest, WaitLeavesARunningChildAloneAtItsDeadlineAndKillReapsIt) {
  ChildProcess child = spawnOrDie({"/bin/sleep", {"30"}, 0});
  EXPECT_FALSE(child.wait(100ms).has_value());
  EXPECT_FALSE(child.reaped());
  EXPECT_FALSE(gone(child.pid()));
  EXPECT_EQ(child.kill().signal, SIGKILL);
  EXPECT_TRUE(gone(child.pid()));
  // Reaped children are not signalled again (their PID may belong to someone else by now).
  child.signal(SIGTERM);
  EXPECT_EQ(child.wait(0ms)->signal, SIGKILL);
}

TEST(ProcessTest, FileLimitAppliesInTheChild) {
  ChildProcess child = spawnOrDie({"/bin/sh", {"-c", "ulimit -n; ulimit -H -n"}, 64});
  ChildProcess::Output output = child.collect(20s);
  EXPECT_EQ(output.status.code, 0) << output.err;
  EXPECT_EQ(output.out, "64\n64\n");
}

TEST(ProcessTest, DestructionKillsAndReapsARunningChild) {
  pid_t pid = -1;
  {
    ChildProcess child = spawnOrDie({"/bin/sleep", {"30"}, 0});
    pid = child.pid();
    ASSERT_GT(pid, 0);
    EXPECT_FALSE(gone(pid));
  }
  EXPECT_TRUE(gone(pid));
}

TEST(ProcessTest, MovingKeepsOneOwner) {
  ChildProcess first = spawnOrDie({"/bin/sleep", {"30"}, 0});
  const pid_t pid = first.pid();
  ChildProcess second = std::move(first);
  EXPECT_EQ(second.pid(), pid);
  EXPECT_EQ(first.pid(), -1);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_EQ(second.kill().signal, SIGKILL);
  EXPECT_TRUE(gone(pid));
}

TEST(ProcessTest, ExecFailureIsAnErrorNotAnExitStatus) {
  auto child = ChildProcess::spawn({"/nonexistent/reverb-no-such-binary", {}, 0});
  ASSERT_FALSE(child.has_value());
  EXPECT_EQ(child.error().code, std::errc::no_such_file_or_directory);
  EXPECT_NE(child.error().message().find("exec /nonexistent/reverb-no-such-binary"),
            std::string::npos)
      << child.error().message();
}

TEST(ProcessTest, StdinIsEmptyAndStrayDescriptorsAreNotInherited) {
  // A descriptor opened without O_CLOEXEC, as a careless test might: the child must not get it.
  int stray = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(stray, 0);
  const std::string fd = std::to_string(stray);
  ChildProcess child = spawnOrDie(
      {"/bin/sh", {"-c", "cat; if [ -e /proc/self/fd/" + fd + " ]; then echo leaked; fi"}, 0});
  ChildProcess::Output output = child.collect(20s);
  ::close(stray);
  EXPECT_FALSE(output.timedOut);
  EXPECT_EQ(output.status.code, 0);
  EXPECT_EQ(output.out, "");
}

}  // namespace
}  // namespace reverb::testing
