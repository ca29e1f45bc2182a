#include "server/connection.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "server/log_limit.h"

namespace reverb {
namespace {

// A buffer that grew past this for a burst is released once it is empty again, so an idle
// connection holds no large allocation.
constexpr size_t kKeepIdleCapacity = 64 * 1024;

using State = Connection::State;

// No more input will be served: what the strand calls EOF.
constexpr bool inputEnded(State s) noexcept {
  return s == State::kInputEnded || s == State::kPeerClosed || s == State::kLingering;
}

[[maybe_unused]] const char* name(State s) noexcept {
  switch (s) {
    case State::kOpen:
      return "open";
    case State::kReadPaused:
      return "read-paused";
    case State::kInputEnded:
      return "input-ended";
    case State::kPeerClosed:
      return "peer-closed";
    case State::kLingering:
      return "lingering";
    case State::kAborted:
      return "aborted";
  }
  return "?";
}

// The moves listed at Connection::State, and only those.
[[maybe_unused]] constexpr bool legal(State from, State to) noexcept {
  switch (to) {
    case State::kOpen:
      return from == State::kReadPaused;
    case State::kReadPaused:
      return from == State::kOpen;
    case State::kInputEnded:
      return from == State::kOpen || from == State::kReadPaused;
    case State::kPeerClosed:
    case State::kLingering:
      return from == State::kOpen || from == State::kReadPaused || from == State::kInputEnded;
    case State::kAborted:
      return true;  // abort() may come in any state, more than once
  }
  return false;
}

}  // namespace

void Connection::transitionTo(State next) noexcept {
#ifndef NDEBUG
  if (!legal(state_, next)) {
    std::fprintf(stderr, "reverb: Connection state cannot go from %s to %s\n", name(state_),
                 name(next));
    std::abort();
  }
#endif
  state_ = next;
}

void Connection::progressTo(Progress next) noexcept {
#ifndef NDEBUG
  if (next <= progress_) {
    std::fprintf(stderr, "reverb: a strand's progress cannot go from %d back to %d\n",
                 static_cast<int>(progress_), static_cast<int>(next));
    std::abort();
  }
#endif
  progress_ = next;
}

Connection::State Connection::state() const noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  MutexLock lock(mu_);
  return state_;
}

void Connection::startLingering(std::chrono::steady_clock::time_point deadline) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  lingerDeadline_ = deadline;
  MutexLock lock(mu_);
  transitionTo(State::kLingering);
}

std::chrono::steady_clock::time_point Connection::lingerDeadline() const noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  return lingerDeadline_;
}

Connection::Connection(UniqueFd fd, const ProtocolConfig& protocol, ConnectionOwner& owner,
                       ServerStats& stats) noexcept
    : fd_(std::move(fd)),
      protocol_(protocol),
      owner_(owner),
      stats_(stats),
      framer_(protocol.framing, protocol.limits) {}

void Connection::expectProxyHeader(ProxyMode mode) {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  proxy_ = std::make_unique<ProxyStage>(mode);
}

std::string Connection::peerName() const {
  if (const SocketAddress* client = proxiedClient()) return client->toString();
  SocketAddress peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd_.get(), peer.get(), &peer.length) != 0) return "(peer gone)";
  return peer.toString();
}

Connection::Delivery Connection::deliver(std::string_view bytes) {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  Delivery d;
  MutexLock lock(mu_);
  // Lingering: the connection is closing after its replies; what the peer still sends is dropped.
  if (state_ == State::kAborted || state_ == State::kLingering) return d;
  inbox_.append(bytes);
  if (!scheduled_) scheduled_ = d.schedule = true;
  if (inbox_.size() + strandBytes_ >= protocol_.highWater) {
    d.pauseReading = true;
    if (state_ == State::kOpen) transitionTo(State::kReadPaused);
  }
  return d;
}

Connection::Delivery Connection::deliverEof(bool peerClosed) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  Delivery d;
  MutexLock lock(mu_);
  switch (state_) {
    case State::kAborted:
    case State::kPeerClosed:
      return d;
    case State::kLingering:
      // The peer has closed too: the lingering close is complete.
      d.closeNow = peerClosed;
      return d;
    case State::kInputEnded:
      // The input already ended at a drain; remember that the peer closed, so the connection ends
      // with a plain close rather than a lingering one.
      if (peerClosed) transitionTo(State::kPeerClosed);
      return d;
    case State::kOpen:
    case State::kReadPaused:
      break;
  }
  transitionTo(peerClosed ? State::kPeerClosed : State::kInputEnded);
  if (scheduled_) return d;
  if (inbox_.empty() && strandBytes_ == 0) {
    // Nothing buffered anywhere: every request was answered and sent. No worker is needed.
    d.closeNow = true;
  } else {
    scheduled_ = d.schedule = true;
  }
  return d;
}

bool Connection::markWritable() noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  MutexLock lock(mu_);
  if (state_ == State::kAborted) return false;
  writable_ = true;
  if (scheduled_) return false;
  scheduled_ = true;
  return true;
}

void Connection::abort(bool shutdownSocket) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  MutexLock lock(mu_);
  transitionTo(State::kAborted);
  inbox_.clear();
  // A worker may be inside send() right now; shutdown, unlike close, cannot let the fd number be
  // reused under it. The fd itself closes with the last reference.
  if (shutdownSocket) ::shutdown(fd_.get(), SHUT_RDWR);
}

std::string_view Connection::prepare(ServiceTiming* timing) noexcept {
  {
    MutexLock lock(mu_);
    if (state_ == State::kAborted) {
      scheduled_ = false;
      skipped_ = true;
      return {};
    }
    skipped_ = false;
    if (progress_ == Progress::kServing) {
      if (in_.empty()) {
        in_.swap(inbox_);
      } else {
        in_.append(inbox_.view());
        inbox_.clear();
        inbox_.shrinkIfIdle(kKeepIdleCapacity);
      }
    } else {
      inbox_.clear();
      inbox_.shrinkIfIdle(kKeepIdleCapacity);
    }
    eof_ = inputEnded(state_);
    peerClosed_ = state_ == State::kPeerClosed;
    if (writable_) {
      writable_ = false;
      watching_ = false;
    }
  }
  if (progress_ == Progress::kServing) {
    size_t parsed = parseInput(eof_, peerClosed_);
    if (timing != nullptr && parsed > 0) {
      if (unsentRequests_ == 0) unsentSince_ = timing->start;
      unsentRequests_ += parsed;
    }
  }
  return out_.view();
}

bool Connection::complete(ssize_t sent, ServiceTiming* timing) noexcept {
  if (skipped_) return false;
  const bool eof = eof_;
  bool alive = true;
  if (sent > 0) {
    out_.consume(static_cast<size_t>(sent));
    ServerStats::add(stats_.bytesOut, static_cast<size_t>(sent));
  } else if (sent != kNotSent && sent != -EAGAIN && sent != -EWOULDBLOCK && sent != -EINTR) {
    ServerStats::add(stats_.writeErrors, 1);
    alive = false;
  }
  if (alive && !out_.empty()) alive = flushOutput();
  bool peerGone = !alive;
  if (peerGone) {
    if (progress_ == Progress::kServing) progressTo(Progress::kFailed);
    out_.clear();
    unsentRequests_ = 0;  // never handed to the kernel: not a service time
  }
  if (timing != nullptr && unsentRequests_ > 0 && out_.empty()) {
    timing->completed = unsentRequests_;
    timing->since = unsentSince_;
    unsentRequests_ = 0;
  }
  if (progress_ != Progress::kServing || (eof && in_.empty())) in_.clear();
  if (out_.empty()) out_.shrinkIfIdle(kKeepIdleCapacity);
  if (in_.empty()) in_.shrinkIfIdle(kKeepIdleCapacity);

  // Decide what the reactor must do next while this worker still owns the strand: once
  // scheduled_ is cleared below, another worker may run service() at any moment.
  ConnectionRequest next{};
  bool hasNext = false;
  if (progress_ != Progress::kFinished) {
    if (peerGone) {
      progressTo(Progress::kFinished);
      hasNext = true;
      next = ConnectionRequest::kClose;
    } else if (!out_.empty()) {
      if (!watching_) {
        watching_ = hasNext = true;
        next = ConnectionRequest::kWatchWritable;
      }
    } else if (progress_ == Progress::kFailed) {
      // Every reply before the bad request is in the kernel; the reactor's close sends FIN after
      // them and discards what the peer still sends.
      progressTo(Progress::kFinished);
      hasNext = true;
      next = ConnectionRequest::kClose;
    } else if (eof) {
      progressTo(Progress::kFinished);
      hasNext = true;
      next = ConnectionRequest::kClose;
    }
  }

  bool resume = false;
  bool more = false;
  ConnectionPtr self;  // taken only when something is posted: the common path costs no refcount
  if (hasNext) self = shared_from_this();
  {
    MutexLock lock(mu_);
    strandBytes_ = in_.size() + out_.size();
    if (state_ == State::kReadPaused && inbox_.size() + strandBytes_ < protocol_.highWater / 2) {
      transitionTo(State::kOpen);
      resume = true;
      if (!self) self = shared_from_this();
    }
    more = state_ != State::kAborted && ((!inbox_.empty() && progress_ == Progress::kServing) ||
                                         inputEnded(state_) != eof || writable_);
    // When nothing more is pending, release the strand. Otherwise keep it: the caller queues the
    // connection again, behind other connections' work.
    if (!more) scheduled_ = false;
  }
  // From here on only locals: the strand may already be running on another worker.
  if (hasNext) owner_.post(self, next);
  if (resume) owner_.post(std::move(self), ConnectionRequest::kResumeReading);
  return more;
}

size_t Connection::parseInput(bool eof, bool peerClosed) noexcept {
  const Framing framing = protocol_.framing;
  size_t requests = 0;
  for (;;) {
    Frame frame = framer_.next(in_.view(), eof && peerClosed);
    if (frame.status == Frame::Status::kNeedMore) break;
    if (frame.status == Frame::Status::kTooLong) {
      ServerStats::add(stats_.tooLong, 1);
      // A hostile client can send bad input as fast as it likes: the warning is rate-limited (its
      // summary says how many were held back), and the debug line has every one.
      static LogLimiter limiter;
      const bool warn = spdlog::should_log(spdlog::level::warn);
      const LogLimiter::Verdict verdict = warn ? limiter.check() : LogLimiter::Verdict{};
      if (verdict.log || spdlog::should_log(spdlog::level::debug)) {
        const char* what = framing == Framing::kLine ? "line" : "frame";
        const size_t limit =
            framing == Framing::kLine ? protocol_.limits.maxLine : protocol_.limits.maxFrame;
        const std::string peer = peerName();
        if (verdict.log) {
          spdlog::warn("{}: {} over the limit of {} bytes; closing after the earlier replies{}",
                       peer, what, limit, LogLimiter::more(verdict));
        }
        spdlog::debug("{}: closing: {} over the limit of {} bytes ({} requests answered before)",
                      peer, what, limit, requestsServed_ + requests);
      }
      progressTo(Progress::kFailed);
      in_.clear();
      break;
    }
    size_t size = replySize(framing, frame);
    // frame.payload points into in_, and out_ is another buffer: growing out_ cannot move it.
    writeReply(framing, protocol_.unit, frame, out_.prepare(size));
    out_.commit(size);
    in_.consume(frame.consumed);
    ++requests;
  }
  if (eof && !in_.empty() && progress_ == Progress::kServing) {
    // A request cut short: a length frame at the peer's EOF, or anything unfinished at a drain.
    ServerStats::add(stats_.truncated, 1);
    in_.clear();
  }
  if (requests) ServerStats::add(stats_.requests, requests);
  requestsServed_ += requests;
  return requests;
}

bool Connection::flushOutput() noexcept {
  size_t sent = 0;
  bool alive = true;
  while (!out_.empty()) {
    ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.consume(static_cast<size_t>(n));
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // EPIPE, ECONNRESET, or the reactor's shutdown: the replies have nowhere to go.
    ServerStats::add(stats_.writeErrors, 1);
    alive = false;
    break;
  }
  if (sent) ServerStats::add(stats_.bytesOut, sent);
  return alive;
}

}  // namespace reverb
