// ProxyStage: the PROXY protocol header in front of a connection's first request, on a listener
// that requires one (--proxy-protocol, or ",proxy=MODE" on one --listen). It takes the
// connection's first bytes until the header is complete, hands on what follows it, and keeps the
// client address the header names, for log lines (and later metrics and limits).
//
// It sits before framing and costs nothing per request: a connection on a listener without
// PROXY has no stage at all, and the reactor asks Connection::awaitingProxyHeader() (one pointer
// test) before handing bytes to the connection.
//
// Ownership: owned by its Connection. Threading: feed() on the loop thread only, until it has
// returned kDone or kInvalid; client() from any thread once feed() has returned kDone (the strand
// first runs after that, and the job queue orders the two).
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "base/buffer.h"
#include "base/net.h"
#include "proto/proxy_protocol.h"

namespace reverb {

class ProxyStage {
 public:
  explicit ProxyStage(ProxyMode mode) noexcept : mode_(mode) {}

  struct Step {
    enum class Status : uint8_t {
      kNeedMore,  // the bytes were kept (a header cut by TCP) or dropped (after kInvalid)
      kDone,      // the header is complete; `rest` is what followed it
      kInvalid,   // not a header this listener accepts: close the connection
    };
    Status status = Status::kNeedMore;
    std::string_view rest;        // kDone: the bytes after the header, inside feed()'s argument
    const char* error = nullptr;  // kInvalid: why, for the log line
  };

  // Loop thread only: the next bytes received. Usually the whole header comes in the first read
  // and nothing is copied; a header cut into several reads is gathered in a buffer the parser
  // bounds (at most 107 bytes for v1, 16 + 65535 for v2) and freed once complete.
  Step feed(std::string_view bytes);

  bool done() const noexcept { return done_; }
  ProxyMode mode() const noexcept { return mode_; }
  // The client (the header's source address), or nullopt: no complete header yet, or one that
  // names none (v1 UNKNOWN, v2 LOCAL such as a balancer's health check, or a non-TCP family), in
  // which case the socket's own peer is the client.
  const std::optional<SocketAddress>& client() const noexcept { return client_; }
  // The header's version, 1 or 2, once done.
  int version() const noexcept { return version_; }

 private:
  ProxyMode mode_;
  bool done_ = false;
  bool failed_ = false;
  int version_ = 0;
  Buffer partial_;  // a header cut by TCP, until complete
  std::optional<SocketAddress> client_;
};

// One listening address and the PROXY mode its connections must follow.
struct ProxyListener {
  SocketAddress address;
  ProxyMode mode = ProxyMode::kOff;
};

// The mode of the listener that accepted a connection whose local address is `local`: the
// listener bound to exactly that address, else one bound to the wildcard of its family and port
// (the kernel's own preference), else kOff. Pure.
ProxyMode listenerProxyMode(std::span<const ProxyListener> listeners,
                            const SocketAddress& local) noexcept;

}  // namespace reverb
