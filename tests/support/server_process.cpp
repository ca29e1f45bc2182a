#include "support/server_process.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "support/backend_environment.h"

namespace reverb::testing {

std::unique_ptr<ServerProcess> ServerProcess::start(Options options) {
  const char* path = std::getenv("REVERBD");
  if (path == nullptr) {
    ADD_FAILURE() << "REVERBD is not set: run this test through meson test";
    return nullptr;
  }
  SpawnOptions spawn{path, {}, options.fileLimit, options.env};
  bool hasListen = std::find(options.args.begin(), options.args.end(), "--listen") !=
                   options.args.end();
  if (!hasListen && options.addListen) spawn.args = {"--listen", "127.0.0.1:0"};
  spawn.args.insert(spawn.args.end(), options.args.begin(), options.args.end());
  const std::string backend = testBackend();
  if (!backend.empty() &&
      std::find(spawn.args.begin(), spawn.args.end(), "--backend") == spawn.args.end()) {
    spawn.args.insert(spawn.args.end(), {"--backend", backend});
  }
  auto child = ChildProcess::spawn(spawn);
  if (!child) {
    ADD_FAILURE() << child.error().message();
    return nullptr;
  }
  std::unique_ptr<ServerProcess> server(new ServerProcess(std::move(*child)));
  server->reader_ = std::thread([s = server.get(), out = server->child_.takeStdout(),
                                 err = server->child_.takeStderr()]() mutable {
    s->readOutput(std::move(out), std::move(err));
  });
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
  if (!child_.reaped()) {
    // A graceful stop first, so sanitizers get to report leaks and races at exit.
    child_.signal(SIGTERM);
    if (!child_.wait(std::chrono::seconds(10))) child_.kill();
  }
  if (reader_.joinable()) reader_.join();
  // A sanitizer report from reverbd fails the test that ran it.
  for (const char* report : {"Sanitizer", "runtime error:"}) {
    EXPECT_EQ(stderr_.find(report), std::string::npos) << "reverbd reported:\n" << stderr_;
  }
}

void ServerProcess::readOutput(UniqueFd out, UniqueFd err) {
  pollfd fds[2] = {{out.get(), POLLIN, 0}, {err.get(), POLLIN, 0}};
  std::string* sinks[2] = {&stdout_, &stderr_};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll on reverbd's output: " << std::strerror(errno);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[4096];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(mu_);
      if (n <= 0) {
        fds[i].fd = -1;
      } else {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      }
      changed_.notify_all();
    }
  }
  std::lock_guard lock(mu_);
  outputClosed_ = true;
  changed_.notify_all();
}

bool ServerProcess::waitForStderr(std::string_view text, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, timeout, [&] {
    return stderr_.find(text) != std::string::npos || outputClosed_;
  }) && stderr_.find(text) != std::string::npos;
}

std::string ServerProcess::stderrText() {
  std::lock_guard lock(mu_);
  return stderr_;
}

std::string ServerProcess::stdoutText() {
  std::lock_guard lock(mu_);
  return stdout_;
}

void ServerProcess::signal(int sig) const { child_.signal(sig); }

int ServerProcess::waitExit(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  std::optional<ExitStatus> status = child_.wait(timeout);
  if (!status) return -1;
  // Exit first, then the end of its output, so stderrText() holds all of it when this returns.
  std::unique_lock lock(mu_);
  if (!changed_.wait_until(lock, end, [&] { return outputClosed_; })) return -1;
  return status->shellCode();
}

long ServerProcess::cpuTicks() const {
  std::ifstream stat("/proc/" + std::to_string(child_.pid()) + "/stat");
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
