// FaultServer: a small reversal server for tests, run on a thread of the test process, that
// answers correctly (with proto's framing and reversal) except for one deliberate fault, so the
// tests can show reverb-load notices each kind. Listens on loopback, port 0. With a service time
// it is also a server of known capacity: one request at a time, each taking that long.
// Ownership: owns its listening socket, connections, epoll fd and thread. Threading: start() and
// the destructor on the test thread; the counters are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "base/net.h"
#include "base/result.h"
#include "proto/framing.h"

namespace reverb::testing {

enum class Fault : uint8_t {
  kNone,          // a correct server
  kFlipByte,      // every Nth reply (server-wide) has one byte flipped
  kSwapReplies,   // on each connection, replies N and N+1 go out in the wrong order
  kDropMidReply,  // every Nth reply (server-wide): send half of it, then close the connection
  kNoReply,       // reads everything, answers nothing
  kResetInsteadOfReply,  // every Nth reply (server-wide): close the connection with RST instead
};

struct FaultServerOptions {
  Framing framing = Framing::kLine;
  Unit unit = Unit::kByte;
  Fault fault = Fault::kNone;
  uint64_t every = 1000;  // N above
  std::string listen = "127.0.0.1:0";  // or "[::1]:0"
  // > 0: a serial server. Requests from every connection wait in one queue, in arrival order; each
  // is answered serviceTime after the previous answer or its own arrival (the kernel's receive
  // timestamp), whichever is later, as a server with one thread that spends serviceTime on each.
  // Its capacity is 1 / serviceTime requests/s exactly, however busy the machine: the deadlines
  // are chained and start from the kernel's clock, so a late wake-up (a timerfd in the epoll set,
  // never a busy wait) delays answers but does not lower the rate. Requests of a connection that
  // closed before their turn are dropped without costing service time.
  std::chrono::nanoseconds serviceTime{0};
};

class FaultServer {
 public:
  // Binds 127.0.0.1:0 and starts serving; fails if the socket or thread cannot be made.
  static Result<std::unique_ptr<FaultServer>> start(FaultServerOptions options);
  ~FaultServer();
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  const SocketAddress& address() const noexcept { return address_; }
  // Thread-safe.
  uint64_t replies() const noexcept { return replies_.load(); }
  uint64_t faultsInjected() const noexcept { return faults_.load(); }

 private:
  explicit FaultServer(FaultServerOptions options) : options_(options) {}
  void serve() noexcept;

  FaultServerOptions options_;
  SocketAddress address_;
  UniqueFd listen_;
  UniqueFd epoll_;
  UniqueFd stop_;
  UniqueFd timer_;  // serial server: a timerfd armed for the answer at the head of the queue
  std::thread thread_;
  std::atomic<uint64_t> replies_{0};
  std::atomic<uint64_t> faults_{0};
};

}  // namespace reverb::testing
