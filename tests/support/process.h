// Test support: the one place that starts a child process. ServerProcess (a reverbd awaited for
// its ready line) and runTool (a tool run to completion) are both built on ChildProcess.
// Needs Linux 5.3 (pidfd_open), so waiting for a child is an event with a deadline, not a poll loop.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/net.h"
#include "base/result.h"

namespace reverb::testing {

struct SpawnOptions {
  std::string path;               // run as is: no PATH search; also the child's argv[0]
  std::vector<std::string> args;  // argv[1..]
  long fileLimit = 0;             // > 0: RLIMIT_NOFILE (soft and hard) of the child, set before exec
  // "NAME=VALUE" entries set in the child's environment; the rest is inherited.
  std::vector<std::string> env = {};
};

// How a child ended.
struct ExitStatus {
  int code = -1;   // its exit status if it exited, else -1
  int signal = 0;  // the signal that ended it, else 0

  // The shell's convention: the exit status, or 128 + the signal.
  int shellCode() const noexcept { return signal != 0 ? 128 + signal : code; }
};

// ChildProcess: one child, started with fork/exec, cwd and environment inherited (plus
// SpawnOptions::env), stdin /dev/null, stdout and stderr each a pipe whose read end this object
// owns until taken.
// Owns the child by PID: the destructor kills (SIGKILL) and reaps a child that is still running.
// Only wait()/kill()/the destructor reap, and nothing signals a reaped child, so a signal can
// never reach a recycled PID. Threading: any one thread at a time; spawn() is thread-safe.
class ChildProcess {
 public:
  // Output of collect(): what the child wrote and how it ended.
  struct Output {
    ExitStatus status;
    bool timedOut = false;  // the deadline passed and the child was killed
    std::string out;
    std::string err;
  };

  // Starts `options.path`. The child's failures before it runs (no such file, setrlimit refused)
  // are reported here as an Error, as posix_spawn would, not as a child exiting 127.
  static Result<ChildProcess> spawn(const SpawnOptions& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // The child's PID; it stays valid to read after the child is reaped.
  pid_t pid() const noexcept { return pid_; }
  // Read ends of the child's stdout and stderr; -1 once taken.
  int stdoutFd() const noexcept { return out_.get(); }
  int stderrFd() const noexcept { return err_.get(); }
  // Hands a pipe to the caller, e.g. to a thread that drains it.
  UniqueFd takeStdout() noexcept { return std::move(out_); }
  UniqueFd takeStderr() noexcept { return std::move(err_); }

  // True once the child has been reaped (by wait, kill or collect).
  bool reaped() const noexcept { return status_.has_value(); }
  // Waits up to `timeout` for the child to exit and reaps it. Returns how it ended, or nullopt if
  // it is still running at the deadline (it is left running).
  std::optional<ExitStatus> wait(std::chrono::milliseconds timeout);
  // Sends `sig` to the child; does nothing once it is reaped.
  void signal(int sig) const noexcept;
  // SIGKILL, then reap. Returns how it ended (it may have exited on its own before).
  ExitStatus kill();
  // Reads stdout and stderr (those not taken) to EOF and waits for the exit, both within
  // `deadline`; past it, kills and reaps the child and returns what it had written so far.
  Output collect(std::chrono::milliseconds deadline);

 private:
  ChildProcess(pid_t pid, UniqueFd pidfd, UniqueFd out, UniqueFd err) noexcept;
  ExitStatus reap();

  pid_t pid_ = -1;
  UniqueFd pidfd_;  // readable once the child has exited; closed when it is reaped
  UniqueFd out_;
  UniqueFd err_;
  std::optional<ExitStatus> status_;  // set when reaped
};

}  // namespace reverb::testing
