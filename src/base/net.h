// Socket helpers shared by the server, the load generator and the tests: an owning fd, addresses
// ("HOST:PORT", "[v6]:PORT") and listening sockets. Every function is thread-safe (no shared
// state).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace reverb {

// UniqueFd: owns one file descriptor and closes it on destruction. Threading: any one thread.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// SocketAddress: an IPv4 or IPv6 address and port.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const noexcept { return storage.ss_family; }
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
  uint16_t port() const noexcept;
  // "127.0.0.1:2002" or "[::1]:2002".
  std::string toString() const;
};

// Parses "HOST:PORT", "[IPV6]:PORT" or ":PORT" (all interfaces) with numeric hosts, or
// "localhost". Returns std::errc::invalid_argument with a sentence on anything else.
Result<SocketAddress> parseAddress(std::string_view text);

// The address of the local end of fd, or an error.
Result<SocketAddress> localAddress(int fd);

// A non-blocking, close-on-exec listening socket bound to `address` with SO_REUSEADDR. IPv6
// sockets are IPv6-only, so "[::]:P" and "0.0.0.0:P" can both be bound. TCP_NODELAY is set on the
// listener, and the sockets accept() returns inherit it: callers need not set it again.
// `reusePort` adds SO_REUSEPORT: other sockets of the same user that set it too may bind the same
// address, and the kernel spreads new connections over them.
Result<UniqueFd> listenOn(const SocketAddress& address, int backlog, bool reusePort = false);

// Takes an inherited listening socket (systemd socket activation passes them from fd 3 on): checks
// that it is a listening TCP socket, makes it non-blocking and close-on-exec, and sets TCP_NODELAY
// as listenOn does. Returns it owned, or an error naming the fd (the fd is then left open).
Result<UniqueFd> adoptListener(int fd);

// A non-blocking connected-or-connecting TCP socket to `address` (EINPROGRESS is success).
Result<UniqueFd> connectTo(const SocketAddress& address);

// Sets TCP_NODELAY. Failure is harmless and ignored: the connection still works, only slower.
void setNoDelay(int fd) noexcept;

// TCP keepalive as Redis sets it: SO_KEEPALIVE, the first probe after `idleSeconds` of silence
// (TCP_KEEPIDLE), then one every idleSeconds / 3 (TCP_KEEPINTVL, at least 1), and the peer is
// declared dead after 3 unanswered probes (TCP_KEEPCNT). Set on a listener, it is inherited by
// every socket accept() returns. Fails with the setsockopt that failed.
Result<void> setKeepAlive(int fd, int idleSeconds);

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
long raiseFileLimit() noexcept;

}  // namespace reverb
