#include "server/proxy_stage.h"

#include <netinet/in.h>

#include <cstring>

namespace reverb {
namespace {

SocketAddress toSocketAddress(const ProxyHeader& h) noexcept {
  SocketAddress a;
  if (h.family == ProxyHeader::Family::kInet) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(h.sourcePort);
    std::memcpy(&v4->sin_addr, h.sourceAddress.data(), 4);
    a.length = sizeof(sockaddr_in);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(h.sourcePort);
    std::memcpy(&v6->sin6_addr, h.sourceAddress.data(), 16);
    a.length = sizeof(sockaddr_in6);
  }
  return a;
}

bool isWildcard(const SocketAddress& a) noexcept {
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (a.family() == AF_INET6) {
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
  }
  return false;
}

bool sameHost(const SocketAddress& a, const SocketAddress& b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&b.storage)->sin_addr.s_addr;
  }
  return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr,
                     &reinterpret_cast<const sockaddr_in6*>(&b.storage)->sin6_addr, 16) == 0;
}

}  // namespace

ProxyStage::Step ProxyStage::feed(std::string_view bytes) {
  Step step;
  if (done_ || failed_) return step;  // after kInvalid the connection is closing: drop
  // The header is parsed in place when it came whole (the usual case: the spec has senders write
  // it at once, and it fits in any first segment); otherwise the pieces are gathered.
  const size_t earlier = partial_.size();
  std::string_view input = bytes;
  if (earlier > 0) {
    partial_.append(bytes);
    input = partial_.view();
  }
  const ProxyHeader h = parseProxyHeader(input, mode_);
  switch (h.status) {
    case ProxyHeader::Status::kIncomplete:
      if (earlier == 0) partial_.append(bytes);
      return step;
    case ProxyHeader::Status::kInvalid:
      failed_ = true;
      partial_ = Buffer();
      step.status = Step::Status::kInvalid;
      step.error = h.error;
      return step;
    case ProxyHeader::Status::kComplete:
      break;
  }
  // Every byte gathered before this call belonged to the header (it was incomplete without them),
  // so what follows the header lies within `bytes`.
  step.status = Step::Status::kDone;
  step.rest = bytes.substr(h.length - earlier);
  version_ = h.version;
  if (h.family != ProxyHeader::Family::kUnspecified) client_ = toSocketAddress(h);
  partial_ = Buffer();
  done_ = true;
  return step;
}

ProxyMode listenerProxyMode(std::span<const ProxyListener> listeners,
                            const SocketAddress& local) noexcept {
  const ProxyListener* wildcard = nullptr;
  for (const ProxyListener& l : listeners) {
    if (l.address.family() != local.family() || l.address.port() != local.port()) continue;
    if (sameHost(l.address, local)) return l.mode;
    if (isWildcard(l.address)) wildcard = &l;
  }
  return wildcard ? wildcard->mode : ProxyMode::kOff;
}

}  // namespace reverb
