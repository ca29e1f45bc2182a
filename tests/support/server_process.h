// Test support: a real reverbd child process, and blocking loopback clients to talk to it.
// ServerProcess owns the child (a ChildProcess, support/process.h): when the object goes, a child
// still running gets SIGTERM, then SIGKILL after 10 s, and is reaped.
// Threading: one test thread; a private thread drains the child's stdout and stderr.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/net.h"
#include "support/process.h"

namespace reverb::testing {

class ServerProcess {
 public:
  struct Options {
    std::vector<std::string> args;  // "--listen 127.0.0.1:0" is added unless args has --listen
    long fileLimit = 0;             // > 0: RLIMIT_NOFILE (soft and hard) of the child
    bool waitReady = true;
    bool addListen = true;          // false: run with reverbd's default addresses
    std::vector<std::string> env = {};  // "NAME=VALUE" entries for reverbd's environment
  };

  // Starts $REVERBD and waits up to 20 s for its ready line. Returns null (with a gtest failure
  // recorded) if it could not start or never became ready.
  static std::unique_ptr<ServerProcess> start(Options options);
  static std::unique_ptr<ServerProcess> start(std::vector<std::string> args) {
    return start(Options{std::move(args)});
  }
  ~ServerProcess();

  pid_t pid() const noexcept { return child_.pid(); }
  // The first address of the ready line.
  const SocketAddress& address() const noexcept { return address_; }
  const std::vector<SocketAddress>& addresses() const noexcept { return addresses_; }

  void signal(int sig) const;
  // Waits up to `timeout` for the child to exit and for the end of its stderr; returns its exit
  // status, 128 + signal if a signal killed it, or -1 on timeout.
  int waitExit(std::chrono::milliseconds timeout);
  // Waits up to `timeout` until stderr contains `text`.
  bool waitForStderr(std::string_view text, std::chrono::milliseconds timeout);
  std::string stderrText();
  std::string stdoutText();
  // User + system CPU time the child has used, in clock ticks, from /proc.
  long cpuTicks() const;

 private:
  explicit ServerProcess(ChildProcess child) : child_(std::move(child)) {}
  void readOutput(UniqueFd out, UniqueFd err);

  ChildProcess child_;
  SocketAddress address_;
  std::vector<SocketAddress> addresses_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::string stdout_;  // guarded by mu_
  std::string stderr_;  // guarded by mu_
  bool outputClosed_ = false;  // guarded by mu_: EOF on both pipes
};

// A blocking TCP connection with a 20 s receive timeout, so a broken server fails a test instead
// of hanging it. Returns an invalid fd (and records a failure) if connect fails.
UniqueFd connectBlocking(const SocketAddress& address);
void sendAll(int fd, std::string_view bytes);
// Reads until `n` bytes, EOF, an error or the receive timeout; returns what arrived.
std::string recvExactly(int fd, size_t n);
// Reads until EOF (or error / timeout).
std::string recvUntilEof(int fd);
// Closes with SO_LINGER {1, 0}: the peer sees a reset, not a FIN.
void closeWithReset(UniqueFd& fd);

// If `reply` is `sent` cut into consecutive pieces with each piece reversed (what chunk framing
// promises, whatever sizes the server's reads had), the number of pieces; otherwise 0. An echo
// server passes as one piece per byte, so callers also check that the pieces are few.
size_t piecewiseReversalPieces(std::string_view sent, std::string_view reply);

}  // namespace reverb::testing
