#include "base/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>

namespace reverb {

uint16_t SocketAddress::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

std::string SocketAddress::toString() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host,
              sizeof host);
    return std::string(host) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
              sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(port());
  }
  return "?";
}

Result<SocketAddress> parseAddress(std::string_view text) {
  auto invalid = [&](const char* why) {
    return makeError(std::errc::invalid_argument, "address '" + std::string(text) + "': " + why);
  };
  std::string_view host;
  std::string_view portText;
  bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid("expected [IPV6]:PORT");
    }
    host = text.substr(1, close - 1);
    portText = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid("expected HOST:PORT");
    host = text.substr(0, colon);
    portText = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return invalid("IPv6 hosts go in brackets");
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (portText.empty() || ec != std::errc() || end != portText.data() + portText.size() ||
      port > 65535) {
    return invalid("port must be a number from 0 to 65535");
  }

  SocketAddress address;
  std::string hostString(host);
  if (hostString == "localhost") hostString = "127.0.0.1";
  if (hostString.empty() || hostString == "*") hostString = "0.0.0.0";
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (!bracketed && inet_pton(AF_INET, hostString.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof(sockaddr_in);
  } else if (bracketed && inet_pton(AF_INET6, hostString.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof(sockaddr_in6);
  } else {
    return invalid("host must be a numeric IPv4 address, [IPv6] address or localhost");
  }
  return address;
}

Result<SocketAddress> localAddress(int fd) {
  SocketAddress address;
  address.length = sizeof address.storage;
  if (::getsockname(fd, address.get(), &address.length) != 0) return errnoError("getsockname");
  return address;
}

Result<UniqueFd> listenOn(const SocketAddress& address, int backlog, bool reusePort) {
  const std::string name = address.toString();
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket for " + name);
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return errnoError("SO_REUSEADDR on " + name);
  }
  if (reusePort && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return errnoError("SO_REUSEPORT on " + name);
  }
  if (address.family() == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    return errnoError("IPV6_V6ONLY on " + name);
  }
  // Accepted sockets inherit TCP_NODELAY from the listener (Linux copies the listener's options),
  // which saves the reactor a setsockopt per connection.
  setNoDelay(fd.get());
  if (::bind(fd.get(), address.get(), address.length) != 0) return errnoError("bind " + name);
  if (::listen(fd.get(), backlog) != 0) return errnoError("listen on " + name);
  return fd;
}

Result<UniqueFd> adoptListener(int fd) {
  const std::string name = "inherited socket " + std::to_string(fd);
  int value = 0;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) != 0) return errnoError(name);
  if (value != SOCK_STREAM) return makeError(std::errc::invalid_argument, name + " is not TCP");
  length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) != 0) return errnoError(name);
  if (value == 0) {
    return makeError(std::errc::invalid_argument, name + " is not listening (Accept=no sockets)");
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errnoError(name);
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return errnoError(name);
  setNoDelay(fd);
  return UniqueFd(fd);
}

Result<UniqueFd> connectTo(const SocketAddress& address) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket");
  if (::connect(fd.get(), address.get(), address.length) != 0 && errno != EINPROGRESS) {
    return errnoError("connect to " + address.toString());
  }
  setNoDelay(fd.get());
  return fd;
}

void setNoDelay(int fd) noexcept {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Result<void> setKeepAlive(int fd, int idleSeconds) {
  const int one = 1;
  const int interval = std::max(1, idleSeconds / 3);
  const int probes = 3;
  if (::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0) {
    return errnoError("SO_KEEPALIVE");
  }
  if (::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idleSeconds, sizeof idleSeconds) != 0) {
    return errnoError("TCP_KEEPIDLE " + std::to_string(idleSeconds));
  }
  if (::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0) {
    return errnoError("TCP_KEEPINTVL");
  }
  if (::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) != 0) {
    return errnoError("TCP_KEEPCNT");
  }
  return {};
}

long raiseFileLimit() noexcept {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
    (void)::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<long>(limit.rlim_cur);
}

}  // namespace reverb
