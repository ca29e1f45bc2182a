#include "support/server_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace reverb::testing {

std::unique_ptr<ServerProcess> ServerProcess::start(Options options) {
  const char* path = std::getenv("REVERBD");
  if (path == nullptr) {
    ADD_FAILURE() << "REVERBD is not set: run this test through meson test";
    return nullptr;
  }
  std::vector<std::string> args = {path};
  bool hasListen = std::find(options.args.begin(), options.args.end(), "--listen") !=
                   options.args.end();
  if (!hasListen && options.addListen) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  args.insert(args.end(), options.args.begin(), options.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  rlimit files{static_cast<rlim_t>(options.fileLimit), static_cast<rlim_t>(options.fileLimit)};
  server->pid_ = ::fork();
  if (server->pid_ == 0) {
    // Child: only async-signal-safe calls until exec.
    ::dup2(pipeFds[1], STDERR_FILENO);
    if (options.fileLimit > 0) ::setrlimit(RLIMIT_NOFILE, &files);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(pipeFds[1]);
  if (server->pid_ < 0) {
    ::close(pipeFds[0]);
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return nullptr;
  }
  server->reader_ = std::thread([s = server.get(), fd = pipeFds[0]] { s->readStderr(fd); });
  if (!options.waitReady) return server;

  if (!server->waitForStderr("ready: listening on ", std::chrono::seconds(20))) {
    ADD_FAILURE() << "reverbd never printed its ready line; stderr:\n" << server->stderrText();
    return nullptr;
  }
  std::string text = server->stderrText();
  size_t at = text.find("ready: listening on ") + std::strlen("ready: listening on ");
  std::istringstream words(text.substr(at, text.find('\n', at) - at));
  for (std::string word; words >> word && word.find('=') == std::string::npos;) {
    auto address = parseAddress(word);
    if (!address) {
      ADD_FAILURE() << "bad address in ready line: " << word;
      return nullptr;
    }
    server->addresses_.push_back(*address);
  }
  if (server->addresses_.empty()) {
    ADD_FAILURE() << "no address in ready line: " << text;
    return nullptr;
  }
  server->address_ = server->addresses_.front();
  // A server listening on the wildcard is reached through loopback.
  for (SocketAddress& a : server->addresses_) {
    if (a.toString().rfind("0.0.0.0:", 0) == 0) a = *parseAddress("127.0.0.1:" + std::to_string(a.port()));
    if (a.toString().rfind("[::]:", 0) == 0) a = *parseAddress("[::1]:" + std::to_string(a.port()));
  }
  server->address_ = server->addresses_.front();
  return server;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exited_) {
    // A graceful stop first, so sanitizers get to report leaks and races at exit.
    ::kill(pid_, SIGTERM);
    if (waitExit(std::chrono::seconds(10)) < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
    }
  }
  if (reader_.joinable()) reader_.join();
  // A sanitizer report from reverbd fails the test that ran it.
  for (const char* report : {"Sanitizer", "runtime error:"}) {
    EXPECT_EQ(stderr_.find(report), std::string::npos) << "reverbd reported:\n" << stderr_;
  }
}

void ServerProcess::readStderr(int fd) {
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mu_);
    if (n <= 0) {
      stderrClosed_ = true;
      changed_.notify_all();
      break;
    }
    stderr_.append(buffer, static_cast<size_t>(n));
    changed_.notify_all();
  }
  ::close(fd);
}

bool ServerProcess::waitForStderr(std::string_view text, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, timeout, [&] {
    return stderr_.find(text) != std::string::npos || stderrClosed_;
  }) && stderr_.find(text) != std::string::npos;
}

std::string ServerProcess::stderrText() {
  std::lock_guard lock(mu_);
  return stderr_;
}

void ServerProcess::signal(int sig) const { ::kill(pid_, sig); }

int ServerProcess::waitExit(std::chrono::milliseconds timeout) {
  if (!exited_) {
    // The child closes stderr when it exits; wait for that event, then reap.
    {
      std::unique_lock lock(mu_);
      if (!changed_.wait_for(lock, timeout, [&] { return stderrClosed_; })) return -1;
    }
    ::waitpid(pid_, &status_, 0);
    exited_ = true;
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

long ServerProcess::cpuTicks() const {
  std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after the last ')'.
  std::istringstream fields(content.substr(content.rfind(')') + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return utime + stime;
}

UniqueFd connectBlocking(const SocketAddress& address) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{20, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (::connect(fd.get(), address.get(), address.length) != 0) {
    ADD_FAILURE() << "connect " << address.toString() << ": " << std::strerror(errno);
    return UniqueFd();
  }
  setNoDelay(fd.get());
  return fd;
}

void sendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ADD_FAILURE() << "send: " << std::strerror(errno);
      return;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

std::string recvExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

std::string recvUntilEof(int fd) {
  std::string out;
  char buffer[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buffer, sizeof buffer, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buffer, static_cast<size_t>(r));
  }
  return out;
}

void closeWithReset(UniqueFd& fd) {
  linger hard{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  fd.reset();
}

size_t piecewiseReversalPieces(std::string_view sent, std::string_view reply) {
  if (sent.size() != reply.size()) return 0;
  size_t pieces = 0;
  // Greedy: the shortest piece that fits. With random payloads a wrong early cut is
  // vanishingly unlikely to fit all the way, and every real cut fits.
  size_t p = 0;
  while (p < sent.size()) {
    size_t k = p + 1;
    for (; k <= sent.size(); ++k) {
      if (reply[p] != sent[k - 1]) continue;
      if (std::equal(reply.begin() + static_cast<long>(p), reply.begin() + static_cast<long>(k),
                     sent.rbegin() + static_cast<long>(sent.size() - k))) {
        break;
      }
    }
    if (k > sent.size()) return 0;
    p = k;
    ++pieces;
  }
  return pieces;
}

}  // namespace reverb::testing
