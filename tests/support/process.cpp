// fork/exec rather than posix_spawn: the child's RLIMIT_NOFILE must be in place before its first
// instruction (reverbd reads and raises its limit at start-up), and posix_spawn has no hook for
// setrlimit; prlimit() on a spawned child races its exec, and a wrapper (sh -c 'ulimit -n ...;
// exec ...') adds a shell between the test and its child. Between fork and exec the child makes
// only async-signal-safe system calls on memory prepared before fork. Exec failures come back to
// the parent through a close-on-exec pipe, which is also how glibc's posix_spawn reports them.
#include "support/process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

namespace reverb::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A failure that only a bug can cause (waitpid on our own unreaped child, poll on our own fds):
// loud, not a hung or silently wrong test.
[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "support/process: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

// What the child reports through the exec pipe when it cannot exec.
enum class Stage : int { kStdio, kFileLimit, kExec };
struct ChildFailure {
  Stage stage;
  int error;
};

// Child side: tells the parent which step failed and why, then exits.
[[noreturn]] void failInChild(int report, Stage stage) {
  ChildFailure failure{stage, errno};
  // Nothing to do if this write fails: the parent then sees EOF, and the child exits 127.
  [[maybe_unused]] ssize_t n = ::write(report, &failure, sizeof failure);
  ::_exit(127);
}

// Child side, between fork and exec: async-signal-safe calls only, no allocation.
[[noreturn]] void runChild(const int stdio[3], int report, long fileLimit, char* const argv[],
                           char* const envp[]) {
  for (int target = 0; target < 3; ++target) {
    // dup2 of an fd onto itself keeps its close-on-exec flag, so clear it by hand.
    if (stdio[target] == target ? ::fcntl(target, F_SETFD, 0) != 0
                                : ::dup2(stdio[target], target) < 0) {
      failInChild(report, Stage::kStdio);
    }
  }
  // A descriptor some test opened without O_CLOEXEC (a client socket, say) must not live on in
  // the child, where it would hold a connection open. Best effort: Linux 5.11 and later.
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (fileLimit > 0) {
    rlimit files{static_cast<rlim_t>(fileLimit), static_cast<rlim_t>(fileLimit)};
    if (::setrlimit(RLIMIT_NOFILE, &files) != 0) failInChild(report, Stage::kFileLimit);
  }
  // Exec keeps ignored signals and the signal mask; the child starts with neither.
  struct sigaction byDefault {};
  byDefault.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &byDefault, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(argv[0], argv, envp);
  failInChild(report, Stage::kExec);
}

Result<std::pair<UniqueFd, UniqueFd>> makePipe(const char* what) {
  int fds[2];
  // O_CLOEXEC: a child that another thread forks at the same time must not inherit our write
  // end, or our reader would never see EOF.
  if (::pipe2(fds, O_CLOEXEC) != 0) return errnoError(std::string("pipe for ") + what);
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

ExitStatus fromWaitStatus(int status) {
  ExitStatus exit;
  if (WIFEXITED(status)) exit.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  return exit;
}

int millisecondsUntil(Clock::time_point end) {
  auto left = std::chrono::ceil<milliseconds>(end - Clock::now()).count();
  return static_cast<int>(std::clamp<decltype(left)>(left, 0, 1 << 30));
}

}  // namespace

Result<ChildProcess> ChildProcess::spawn(const SpawnOptions& options) {
  std::vector<std::string> storage = {options.path};
  storage.insert(storage.end(), options.args.begin(), options.args.end());
  std::vector<char*> argv;
  for (std::string& arg : storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // Our environment with options.env's entries in place of those of the same name; built before
  // fork, since the child may not allocate.
  std::vector<std::string> environment = options.env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('=') + 1);
    bool replaced = false;
    for (const std::string& mine : options.env) replaced = replaced || mine.rfind(name, 0) == 0;
    if (!replaced) environment.emplace_back(entry);
  }
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  // Tests never feed a child's stdin; one that read the terminal would hang.
  UniqueFd devNull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devNull.valid()) return errnoError("open /dev/null");
  auto out = makePipe("stdout");
  if (!out) return out.error();
  auto err = makePipe("stderr");
  if (!err) return err.error();
  auto report = makePipe("exec status");
  if (!report) return report.error();
  const int stdio[3] = {devNull.get(), out->second.get(), err->second.get()};

  pid_t pid = ::fork();
  if (pid < 0) return errnoError("fork for " + options.path);
  if (pid == 0) runChild(stdio, report->second.get(), options.fileLimit, argv.data(), envp.data());

  // The child is ours and unreaped, so its PID cannot be recycled before pidfd_open.
  // The raw system call: glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)));
  if (!pidfd.valid()) {
    Error error = errnoError("pidfd_open (needs Linux 5.3)");
    ChildProcess doomed(pid, UniqueFd(), UniqueFd(), UniqueFd());  // killed and reaped on return
    return error;
  }
  ChildProcess child(pid, std::move(pidfd), std::move(out->first), std::move(err->first));
  devNull.reset();
  out->second.reset();
  err->second.reset();
  report->second.reset();

  // EOF: the exec succeeded (the pipe closed on exec). A record: the child failed and exits 127.
  ChildFailure failure{};
  ssize_t n;
  while ((n = ::read(report->first.get(), &failure, sizeof failure)) < 0 && errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof failure)) {
    child.kill();
    errno = failure.error;
    switch (failure.stage) {
      case Stage::kStdio:
        return errnoError("redirecting stdio of " + options.path);
      case Stage::kFileLimit:
        return errnoError("setrlimit RLIMIT_NOFILE " + std::to_string(options.fileLimit) +
                          " for " + options.path);
      case Stage::kExec:
        return errnoError("exec " + options.path);
    }
  }
  return child;
}

ChildProcess::ChildProcess(pid_t pid, UniqueFd pidfd, UniqueFd out, UniqueFd err) noexcept
    : pid_(pid), pidfd_(std::move(pidfd)), out_(std::move(out)), err_(std::move(err)) {}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) kill();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    out_ = std::move(other.out_);
    err_ = std::move(other.err_);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) kill();
}

ExitStatus ChildProcess::reap() {
  if (pid_ <= 0) {
    std::fprintf(stderr, "support/process: reaping a ChildProcess that has no child\n");
    std::abort();
  }
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r != pid_) die("waitpid on our own child");
  pidfd_.reset();
  status_ = fromWaitStatus(status);
  return *status_;
}

std::optional<ExitStatus> ChildProcess::wait(milliseconds timeout) {
  if (status_ || pid_ <= 0) return status_;
  const auto end = Clock::now() + timeout;
  for (;;) {
    pollfd exited{pidfd_.get(), POLLIN, 0};
    int r = ::poll(&exited, 1, millisecondsUntil(end));
    if (r > 0) return reap();
    if (r == 0) return std::nullopt;
    if (errno != EINTR) die("poll on a pidfd");
  }
}

void ChildProcess::signal(int sig) const noexcept {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

ExitStatus ChildProcess::kill() {
  if (status_) return *status_;
  ::kill(pid_, SIGKILL);
  return reap();
}

ChildProcess::Output ChildProcess::collect(milliseconds deadline) {
  Output output;
  const auto end = Clock::now() + deadline;
  pollfd fds[2] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
  std::string* sinks[2] = {&output.out, &output.err};
  // Reads what is ready on fds[i]; returns false at EOF (or a read error, taken as EOF).
  auto drain = [&](int i) {
    char buffer[8192];
    ssize_t n;
    while ((n = ::read(fds[i].fd, buffer, sizeof buffer)) < 0 && errno == EINTR) {
    }
    if (n <= 0) return false;
    sinks[i]->append(buffer, static_cast<size_t>(n));
    return true;
  };
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    int r = ::poll(fds, 2, millisecondsUntil(end));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("poll on the child's pipes");
    if (r == 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(i)) {
        fds[i].fd = -1;
      }
    }
  }
  std::optional<ExitStatus> status = wait(std::chrono::duration_cast<milliseconds>(end - Clock::now()));
  if (!status) {
    output.timedOut = true;
    status = kill();
  }
  // Whatever the child wrote before it died, without waiting for anyone else holding the pipes.
  for (int i = 0; i < 2; ++i) {
    while (fds[i].fd >= 0) {
      pollfd ready{fds[i].fd, POLLIN, 0};
      if (::poll(&ready, 1, 0) <= 0 || !drain(i)) fds[i].fd = -1;
    }
  }
  out_.reset();
  err_.reset();
  output.status = *status;
  return output;
}

}  // namespace reverb::testing
