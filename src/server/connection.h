// Connection: one client socket, its input, its output and its place in the worker pool.
//
// Ownership: owns the socket fd (closed when the last reference goes). The reactor's table holds
// the main reference; a job in the queue or a worker running the strand holds another.
//
// Threading: two sides meet under one small mutex.
//  - Reactor side (loop thread only, checked against the owner's loopThread() where NDEBUG is not
//    defined): deliver(), deliverEof(), markWritable(), abort(), state(), startLingering(),
//    lingerDeadline(), pauseForBudget(), checkDeadlines(), settleCloseReason(), bufferedBytes(),
//    timer().
//  - Strand side: service(), run by exactly one worker at a time. The `scheduled_` flag makes the
//    connection a strand: it is in the queue or on a worker at most once, so its requests are
//    parsed, reversed and written in arrival order by one thread at a time, whatever the number of
//    workers, and two threads never write to its socket at once.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/buffer.h"
#include "base/mutex.h"
#include "base/net.h"
#include "proto/framing.h"
#include "proto/reverse.h"
#include "server/loop_thread.h"
#include "server/proxy_stage.h"
#include "server/stats.h"
#include "server/timer_wheel.h"

namespace reverb {

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;

// What a connection's protocol is; shared, read-only, by every connection of a server.
struct ProtocolConfig {
  Framing framing = Framing::kChunk;
  Unit unit = Unit::kByte;
  FrameLimits limits;
  // Reading pauses while a connection holds this many bytes of unprocessed input plus unsent
  // output (a client that does not read, or workers that fall behind), and resumes below half.
  size_t highWater = 1 << 20;
  // Replies owed to a client whose socket is full (it does not read): the replies reverbd holds
  // beyond what the kernel's socket buffer took, plus the requests received whose replies wait
  // behind them. Reaching outputHardLimit closes the connection at once; staying above
  // outputSoftLimit for the reactor's soft-limit time closes it then. 0: no limit. Both must be
  // at most highWater, which bounds what a connection holds.
  size_t outputHardLimit = 0;
  size_t outputSoftLimit = 0;

  // The largest request (and reply) the framing allows, headers and terminators included.
  size_t largestRequest() const noexcept {
    return framing == Framing::kLength ? limits.maxFrame + 4 : limits.maxLine + 2;
  }
  // The strand parses requests only while its unsent replies are below this, so a client that
  // does not read holds its backlog as unparsed input (which back-pressure bounds) rather than
  // as a second copy in replies: 64 KiB (one send's worth on loopback), or half the high-water
  // mark if that is less.
  size_t outputCap() const noexcept { return std::min<size_t>(highWater / 2, 64 * 1024); }
};

// Milliseconds on steady_clock: the unit of every connection deadline. Reads the vDSO clock (no
// system call).
inline int64_t steadyMs() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What a strand asks of the reactor. Handled on the loop thread, in the order posted.
enum class ConnectionRequest : uint8_t {
  kClose,          // every reply is in the kernel (or the peer is gone, or a protocol error
                   // stopped the input): the reactor ends the connection without a reset; or
                   // the output hard limit was reached (settleCloseReason says kOutputLimit):
                   // the reactor closes it at once
  kWatchWritable,  // a send would block: call markWritable() when the socket can take more
  kResumeReading,  // buffered bytes fell below the low-water mark: read again
};

// What a worker learns from one service() call, for the service-time histogram (WorkerStats). The
// worker reads the clock once per call, not per request: `start` is its previous reading (when
// this call began), and its next reading, once service() returns, ends every request `completed`
// reports. A request's service time therefore runs from the start of the call that parsed it to
// the end of the call whose send() handed its reply's last byte to the kernel; the requests of one
// call share that interval, and one that waited for a slow reader includes the wait.
struct ServiceTiming {
  std::chrono::steady_clock::time_point start;  // in: when this service() call began
  uint64_t completed = 0;  // out: requests whose replies are now all in the kernel
  std::chrono::steady_clock::time_point since;  // out: the start of the call that parsed the
                                                // oldest of them
};

// ConnectionOwner: the reactor, seen from a strand. post() is thread-safe.
class ConnectionOwner {
 public:
  virtual void post(ConnectionPtr c, ConnectionRequest request) noexcept = 0;

  // The owner's loop thread, which the loop-thread-only Connection methods check. Bound to the
  // thread that constructs the owner; Reactor::run binds the thread that runs the loop, and a test
  // that drives Connections itself binds its own thread.
  LoopThreadChecker& loopThread() noexcept { return loopThread_; }
  const LoopThreadChecker& loopThread() const noexcept { return loopThread_; }

 protected:
  ~ConnectionOwner() = default;

 private:
  [[no_unique_address]] LoopThreadChecker loopThread_;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Where the connection is in its life, as one value instead of flags that could disagree
  // (muduo's TcpConnection::StateE). Guarded by mu_. The reactor makes every move but one, on the
  // loop thread; the strand makes only kReadPaused -> kOpen. The legal moves, written once in
  // transitionTo() and checked there where NDEBUG is not defined:
  //
  //   kOpen <-> kReadPaused                            back-pressure: deliver() pauses at the
  //                                                    high-water mark, the strand resumes
  //   kOpen, kReadPaused -> kPeerClosed                the peer's FIN was read: deliverEof(true)
  //   kOpen, kReadPaused -> kInputEnded -> kPeerClosed a drain ended the input: deliverEof(false);
  //                                                    the FIN may still come after it
  //   kOpen, kReadPaused, kInputEnded -> kLingering    SHUT_WR sent; input is read and discarded
  //   any -> kAborted                                  the reactor gave the connection up (final)
  //
  // Not part of it, because they are independent of where the connection is in its life:
  // `scheduled_` (the strand token: queued or on a worker, in any state) and `writable_` (a latch:
  // onWritable fired since the strand last looked), both under mu_; and the strand's own Progress.
  enum class State : uint8_t { kOpen, kReadPaused, kInputEnded, kPeerClosed, kLingering, kAborted };

  Connection(UniqueFd fd, const ProtocolConfig& protocol, ConnectionOwner& owner,
             ServerStats& stats) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Takes what the connection still holds off ServerStats::buffered (unless abort() did), and
  // counts its buffers' capacity as given back.
  ~Connection();

  int fd() const noexcept { return fd_.get(); }
  // "127.0.0.1:4242", for log lines: the client a PROXY header named, else the socket's peer.
  // Thread-safe (the header's client is fixed before the strand first runs).
  std::string peerName() const;

  // Loop thread only, before the backend delivers any byte: the connection came through a
  // listener that requires a PROXY header of `mode` (not kOff) before its first request.
  void expectProxyHeader(ProxyMode mode);
  // Loop thread only: true while the PROXY header is still to come. One pointer test for a
  // connection without one: this is what the reactor checks on every delivery.
  bool awaitingProxyHeader() const noexcept { return proxy_ != nullptr && !proxy_->done(); }
  // Loop thread only, while awaitingProxyHeader(): the stage that takes the header's bytes.
  ProxyStage& proxyStage() noexcept { return *proxy_; }
  // The client address a PROXY header named, or nullptr (no header on this listener, or one
  // naming no address: then the socket's peer is the client). Kept for metrics and limits.
  // Thread-safe once the header is complete.
  const SocketAddress* proxiedClient() const noexcept {
    return proxy_ && proxy_->client() ? &*proxy_->client() : nullptr;
  }

  // What the reactor must do after handing over bytes or EOF.
  struct Delivery {
    bool schedule = false;      // push this connection to the job queue
    bool pauseReading = false;  // stop reading: the high-water mark is reached
    bool closeNow = false;      // EOF on an idle or lingering connection: nothing left to answer,
                                // close it
    size_t held = 0;            // bytes the connection holds now, input and output (deliver())
  };

  // Loop thread only: appends received bytes to the inbox; drops them while lingering. `nowMs`
  // (steadyMs()) starts the request clock when these bytes begin a new request.
  Delivery deliver(std::string_view bytes, int64_t nowMs = steadyMs()) REVERB_EXCLUDES(mu_);
  // Loop thread only: no more input will be read. `peerClosed`: the peer shut down its side, so
  // a last line without LF is a request; otherwise (a drain) an unfinished request is dropped.
  Delivery deliverEof(bool peerClosed) noexcept REVERB_EXCLUDES(mu_);
  // Loop thread only: the socket can take more bytes; returns true if the strand must be scheduled.
  bool markWritable() noexcept REVERB_EXCLUDES(mu_);
  // Loop thread only: the reactor is done with the connection; the strand drops everything and
  // never touches the socket again. `shutdownSocket` (a forced close) also shuts the socket down,
  // so a worker inside send() fails at once and the peer sees the end now.
  void abort(bool shutdownSocket) noexcept REVERB_EXCLUDES(mu_);

  // Strand only (the worker that popped this connection). Parses the input, appends the replies to
  // the output, sends what the socket takes and posts what the reactor must do next. Returns true
  // when more input arrived meanwhile: the caller queues the connection again. `timing` (null:
  // not measured) gets the requests this call completed; see ServiceTiming.
  bool service(ServiceTiming* timing = nullptr) noexcept REVERB_EXCLUDES(mu_) {
    prepare(timing);
    return complete(kNotSent, timing);
  }

  // Strand only: service() in two halves, for a worker that sends the replies of several
  // connections with one system call (SendRing). prepare() takes the input, parses it and returns
  // the replies waiting to be sent (empty if none); the caller may send a prefix of them and pass
  // complete() what that send returned (bytes, or -errno), or kNotSent. complete() sends the rest
  // itself (and, when parsing stopped at ProtocolConfig::outputCap(), goes on parsing and sending
  // while the socket takes the replies, up to 256 KiB, then yields) and does what service() does
  // after sending; it returns what service() returns. A `timing` given to prepare() (its start)
  // must be given to complete() too (what completed).
  static constexpr ssize_t kNotSent = 0;
  std::string_view prepare(ServiceTiming* timing = nullptr) noexcept REVERB_EXCLUDES(mu_);
  bool complete(ssize_t sent, ServiceTiming* timing = nullptr) noexcept REVERB_EXCLUDES(mu_);

  // Loop thread only: the current state. Takes mu_; for the reactor's rare decisions (resume,
  // finish, drain), never on the per-request path.
  State state() const noexcept REVERB_EXCLUDES(mu_);
  // Loop thread only: SHUT_WR is done; from now on input is discarded (deliver() drops it) until
  // the peer's EOF (deliverEof(true) then says closeNow) or `deadline`.
  void startLingering(std::chrono::steady_clock::time_point deadline) noexcept REVERB_EXCLUDES(mu_);
  // Loop thread only: when a lingering connection is closed regardless.
  std::chrono::steady_clock::time_point lingerDeadline() const noexcept;

  // Loop thread only: pauses reading because the server as a whole holds too much (--max-buffered);
  // the strand resumes it once the connection holds less than `resumeBelow`. Returns false if the
  // connection was not reading (paused already, or ending).
  bool pauseForBudget(size_t resumeBelow) noexcept REVERB_EXCLUDES(mu_);
  // Loop thread only: bytes held now (inbox, unparsed input, unsent replies).
  size_t bufferedBytes() const noexcept REVERB_EXCLUDES(mu_);

  // The reactor's deadlines for this connection, all measured from times the connection records
  // as it goes (steadyMs()); 0 turns one off.
  struct Deadlines {
    int64_t idleMs = 0;     // no unfinished request and no unsent reply for this long
    int64_t requestMs = 0;  // an unfinished request, or unsent replies, without progress
    int64_t softMs = 0;     // unsent replies above ProtocolConfig::outputSoftLimit
  };
  struct Check {
    std::optional<CloseReason> close;  // a deadline has passed: close for this reason
    int64_t nextMs = INT64_MAX;        // otherwise the earliest deadline still running
    size_t released = 0;               // bytes of buffer capacity given back (idle connection)
  };
  // Loop thread only: which deadline, if any, has passed at `nowMs`. An idle connection that no
  // worker holds also gives back its buffers' capacity here.
  Check checkDeadlines(int64_t nowMs, const Deadlines& deadlines) noexcept REVERB_EXCLUDES(mu_);

  // Loop thread only: records why the connection ends unless a reason is recorded already, and
  // returns the one recorded (the first cause wins: a reset during a lingering close that a
  // protocol error began stays a protocol error).
  CloseReason settleCloseReason(CloseReason fallback) noexcept REVERB_EXCLUDES(mu_);
  // Loop thread only: bytes deliver() took, for the log line of a connection closed for cause.
  uint64_t receivedBytes() const noexcept { return received_; }
  // Loop thread only: the reactor's timer for this connection (TimerWheel::Node::owner is this).
  TimerWheel::Node& timer() noexcept { return timer_; }

 private:
  // The strand's progress through its replies: it only moves forward. Apart from State because
  // only the strand touches it, without the lock; inside State it would cost a lock per request.
  enum class Progress : uint8_t {
    kServing,   // parsing requests and sending replies
    kFailed,    // protocol error or peer gone: input is discarded; earlier replies still flush
    kFinished,  // kClose posted: nothing more to do
  };

  // Caller holds mu_. Aborts (where NDEBUG is not defined) on a move not listed at State.
  void transitionTo(State next) noexcept REVERB_REQUIRES(mu_);
  // Strand only. Aborts (where NDEBUG is not defined) on a move backwards.
  void progressTo(Progress next) noexcept;

  // Moves parsed requests from in_ to replies in out_, until in_ holds no complete request or out_
  // reaches outputCap(). Returns the requests parsed; `capped` says it stopped at the cap. A
  // protocol error moves progress_ to kFailed. `eof`: the input is complete; `peerClosed`: a last
  // line without LF counts as a request.
  size_t parseInput(bool eof, bool peerClosed, bool& capped) noexcept;
  // Sends out_ until it is empty or the socket is full, adding the bytes sent to `sent`; false if
  // the peer is gone.
  bool flushOutput(size_t& sent) noexcept;
  // Timed service only (`timing` not null): `parsed` requests have replies waiting for the kernel.
  void noteParsed(size_t parsed, const ServiceTiming* timing) noexcept {
    if (timing == nullptr || parsed == 0) return;
    if (unsentRequests_ == 0) unsentSince_ = timing->start;
    unsentRequests_ += parsed;
  }

  const UniqueFd fd_;
  const ProtocolConfig& protocol_;
  ConnectionOwner& owner_;
  ServerStats& stats_;

  mutable Mutex mu_;
  // Guarded by mu_: the hand-over between the reactor and the strand.
  Buffer inbox_ REVERB_GUARDED_BY(mu_);            // bytes received, not yet taken by the strand
  size_t strandBytes_ REVERB_GUARDED_BY(mu_) = 0;  // in_ + out_ sizes, published by the strand
                                                   // for back-pressure (and raised at once by
                                                   // what it takes from the inbox)
  size_t unsent_ REVERB_GUARDED_BY(mu_) = 0;       // out_'s size, published with strandBytes_
  size_t resumeBelow_ REVERB_GUARDED_BY(mu_) = 0;  // kReadPaused: the strand resumes reading
                                                   // below this many bytes
  State state_ REVERB_GUARDED_BY(mu_) = State::kOpen;
  bool scheduled_ REVERB_GUARDED_BY(mu_) = false;  // queued or running on a worker
  bool writable_ REVERB_GUARDED_BY(mu_) = false;   // onWritable fired since the strand last looked
  bool hasReason_ REVERB_GUARDED_BY(mu_) = false;  // reason_ is recorded
  CloseReason reason_ REVERB_GUARDED_BY(mu_) = CloseReason::kEof;
  // Deadline clocks, in steadyMs(); 0: not running. Set by whichever side sees the event.
  int64_t idleSince_ REVERB_GUARDED_BY(mu_) = 0;     // nothing pending since (accept, or the last
                                                     // reply sent)
  int64_t requestSince_ REVERB_GUARDED_BY(mu_) = 0;  // an unfinished request began (or the last
                                                     // one completed)
  int64_t sendSince_ REVERB_GUARDED_BY(mu_) = 0;     // unsent replies; the last time the socket
                                                     // took some
  int64_t softSince_ REVERB_GUARDED_BY(mu_) = 0;     // unsent replies above outputSoftLimit since

  // Loop thread only.
  std::chrono::steady_clock::time_point lingerDeadline_;  // meaningful in kLingering
  // Only on listeners that require a PROXY header: written by the loop thread until the header is
  // complete, read-only after that.
  std::unique_ptr<ProxyStage> proxy_;
  TimerWheel::Node timer_;
  uint64_t received_ = 0;  // bytes deliver() took (not those dropped while lingering)

  // Strand only.
  Framer framer_;
  Buffer in_;   // input not yet parsed into complete requests
  Buffer out_;  // replies not yet accepted by the socket
  Progress progress_ = Progress::kServing;
  bool skipped_ = false;      // prepare() found the connection aborted: complete() does nothing
  bool eof_ = false;          // prepare() saw the input end
  bool ended_ = false;        // ... and all of it is in in_ (no inbox waits behind a capped parse)
  bool peerClosed_ = false;   // ... because the peer closed its side
  bool parseCapped_ = false;  // the last parse stopped at outputCap(): in_ may hold complete
                              // requests, and the inbox waits until they are parsed
  size_t published_ = 0;      // prepare(): strandBytes_ as published, the inbox's bytes included
  size_t waiting_ = 0;        // prepare(): inbox bytes left behind a capped parse
  size_t completed_ = 0;      // requests parsed since prepare()
  bool watching_ = false;     // kWatchWritable posted, markWritable not yet seen (a latch that
                              // any Progress can hold)
  // Timed service only: requests parsed whose replies are not all in the kernel yet, and the start
  // of the call that parsed the oldest of them.
  uint64_t unsentRequests_ = 0;
  std::chrono::steady_clock::time_point unsentSince_;
  uint64_t requestsServed_ = 0;  // for the log line of a connection closed for cause
};

}  // namespace reverb
