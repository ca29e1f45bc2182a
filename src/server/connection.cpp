#include "server/connection.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "server/log_limit.h"

namespace reverb {
namespace {

// A buffer that grew past this for a burst is released once it is empty again (or moved into a
// fitting allocation once it is at most a quarter full), so a connection holds no large
// allocation after its burst.
constexpr size_t kKeepIdleCapacity = 64 * 1024;
// Reply bytes one service() call sends before it yields to the other connections.
constexpr size_t kServiceQuantum = 256 * 1024;

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
      idleSince_(steadyMs()),
      framer_(protocol.framing, protocol.limits) {
  timer_.owner = this;
  // Back-pressure bounds what each buffer holds; growth stops near that bound instead of doubling
  // past it. The inbox and in_ trade storage (service() swaps them), so they share one cap.
  // in_ is consumed a request at a time and, behind a client that does not read, a little at a
  // time: it slides its contents forward once a quarter of them is consumed, so the inbox can join
  // it in place rather than grow a second large buffer.
  const size_t input = protocol.highWater + 64 * 1024;
  inbox_.limitGrowth(input, 4);
  in_.limitGrowth(input, 4);
  out_.limitGrowth(protocol.outputCap() + protocol.largestRequest());
}

Connection::~Connection() {
  // The last reference: no other thread can touch the connection any more.
  if (state_ != State::kAborted) {
    stats_.buffered.add(-static_cast<int64_t>(inbox_.size() + strandBytes_));
  }
  const size_t capacity = inbox_.capacity() + in_.capacity() + out_.capacity();
  if (capacity > 0) ServerStats::add(stats_.bufferBytesFreed, capacity);
}

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

Connection::Delivery Connection::deliver(std::string_view bytes, int64_t nowMs) {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  Delivery d;
  MutexLock lock(mu_);
  // Lingering: the connection is closing after its replies; what the peer still sends is dropped.
  if (state_ == State::kAborted || state_ == State::kLingering) return d;
  received_ += bytes.size();
  // No partial request anywhere: these bytes begin one, and its clock starts. Bytes that add to a
  // request already begun do not restart it (a client trickling a byte at a time gains nothing).
  if (requestSince_ == 0 && inbox_.empty() && strandBytes_ == unsent_) requestSince_ = nowMs;
  inbox_.append(bytes);
  stats_.buffered.add(static_cast<int64_t>(bytes.size()));
  if (!scheduled_) scheduled_ = d.schedule = true;
  d.held = inbox_.size() + strandBytes_;
  if (d.held >= protocol_.highWater) {
    d.pauseReading = true;
    if (state_ == State::kOpen) {
      transitionTo(State::kReadPaused);
      resumeBelow_ = protocol_.highWater / 2;
    }
  }
  return d;
}

bool Connection::pauseForBudget(size_t resumeBelow) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  MutexLock lock(mu_);
  if (state_ != State::kOpen) return false;
  transitionTo(State::kReadPaused);
  resumeBelow_ = resumeBelow;
  return true;
}

size_t Connection::bufferedBytes() const noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  MutexLock lock(mu_);
  return inbox_.size() + strandBytes_;
}

CloseReason Connection::settleCloseReason(CloseReason fallback) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  MutexLock lock(mu_);
  if (!hasReason_) {
    hasReason_ = true;
    reason_ = fallback;
  }
  return reason_;
}

Connection::Check Connection::checkDeadlines(int64_t nowMs, const Deadlines& deadlines) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  Check check;
  MutexLock lock(mu_);
  if (state_ == State::kAborted || state_ == State::kLingering) return check;
  // True when the clock started at `since` has run out; otherwise notes when it will.
  auto expired = [&](int64_t since, int64_t timeout) {
    if (since == 0 || timeout <= 0) return false;
    if (since + timeout <= nowMs) return true;
    check.nextMs = std::min(check.nextMs, since + timeout);
    return false;
  };
  const bool inputOpen = state_ == State::kOpen || state_ == State::kReadPaused;
  if (inputOpen && expired(requestSince_, deadlines.requestMs)) {
    check.close = CloseReason::kRequestTimeout;
  } else if (expired(sendSince_, deadlines.requestMs)) {
    check.close = CloseReason::kRequestTimeout;
  } else if (expired(softSince_, deadlines.softMs)) {
    check.close = CloseReason::kOutputLimit;
  }
  if (check.close) return check;
  const bool idle = inputOpen && !scheduled_ && inbox_.empty() && strandBytes_ == 0;
  if (!idle) return check;
  if (expired(idleSince_, deadlines.idleMs)) {
    check.close = CloseReason::kIdle;
    return check;
  }
  // Idle, and no worker holds the strand (scheduled_ is false, under mu_): in_ and out_ are
  // nobody's until the next delivery, which only this thread makes. Their capacity, and the
  // inbox's, go back to the allocator; the next request allocates again.
  check.released = inbox_.shrinkIfIdle(0) + in_.shrinkIfIdle(0) + out_.shrinkIfIdle(0);
  if (check.released > 0) ServerStats::add(stats_.bufferBytesFreed, check.released);
  return check;
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
  if (state_ != State::kAborted) {
    // From now on the connection holds nothing, as far as --max-buffered is concerned; the strand
    // adds no more (it sees kAborted).
    stats_.buffered.add(-static_cast<int64_t>(inbox_.size() + strandBytes_));
    strandBytes_ = unsent_ = 0;
  }
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
      // The bytes move from the inbox to in_ and stay held: published at once, so the reactor's
      // back-pressure counts them while this worker parses, not only once it is done. While in_
      // still holds complete requests (parsing stopped at outputCap()), the inbox joins it only
      // if in_'s storage can take it as it is; otherwise it waits, rather than make in_ grow
      // (or be copied whole) behind a client that does not read.
      if (in_.empty()) {
        strandBytes_ += inbox_.size();
        in_.swap(inbox_);
      } else if (!parseCapped_ || in_.fits(inbox_.size())) {
        strandBytes_ += inbox_.size();
        in_.append(inbox_.view());
        inbox_.clear();
        inbox_.shrinkIfIdle(kKeepIdleCapacity);
      }
    } else {
      stats_.buffered.add(-static_cast<int64_t>(inbox_.size()));
      inbox_.clear();
      inbox_.shrinkIfIdle(kKeepIdleCapacity);
    }
    published_ = strandBytes_;
    waiting_ = inbox_.size();
    eof_ = inputEnded(state_);
    ended_ = eof_ && inbox_.empty();
    peerClosed_ = state_ == State::kPeerClosed;
    if (writable_) {
      writable_ = false;
      watching_ = false;
    }
  }
  completed_ = 0;
  parseCapped_ = false;
  if (progress_ == Progress::kServing) {
    completed_ = parseInput(ended_, peerClosed_, parseCapped_);
    noteParsed(completed_, timing);
  }
  return out_.view();
}

bool Connection::complete(ssize_t sent, ServiceTiming* timing) noexcept {
  if (skipped_) return false;
  const bool eof = eof_;
  bool alive = true;
  size_t sentBytes = 0;
  if (sent > 0) {
    out_.consume(static_cast<size_t>(sent));
    sentBytes = static_cast<size_t>(sent);
    ServerStats::add(stats_.bytesOut, sentBytes);
  } else if (sent != kNotSent && sent != -EAGAIN && sent != -EWOULDBLOCK && sent != -EINTR) {
    ServerStats::add(stats_.writeErrors, 1);
    alive = false;
  }
  // Send and parse in turns: parsing stopped once outputCap() bytes of replies waited, and every
  // send that makes room lets it go on, until the input holds no complete request or the socket
  // is full. After kServiceQuantum bytes sent the strand yields: it goes back in the queue behind
  // the other connections, so one client with a megabyte of pipelined requests cannot make every
  // other client wait for all of it.
  bool yielded = false;
  while (alive) {
    if (!out_.empty()) alive = flushOutput(sentBytes);
    if (!alive || !parseCapped_ || !out_.empty()) break;  // gone, all parsed, or socket full
    if (sentBytes >= kServiceQuantum) {
      yielded = true;
      break;
    }
    parseCapped_ = false;
    const size_t parsed = parseInput(ended_, peerClosed_, parseCapped_);
    completed_ += parsed;
    noteParsed(parsed, timing);
    if (out_.empty()) break;
  }
  std::optional<CloseReason> reason;
  if (!alive) {
    if (progress_ == Progress::kServing) progressTo(Progress::kFailed);
    out_.clear();
    unsentRequests_ = 0;  // never handed to the kernel: not a service time
    reason = CloseReason::kReset;
  }
  // What the client owes reading while its socket is full: the replies waiting, and the requests
  // whose replies wait behind them (a reply is as long as its request).
  const size_t owed = out_.empty() ? 0 : waiting_ + in_.size() + out_.size();
  if (!reason && protocol_.outputHardLimit != 0 && owed >= protocol_.outputHardLimit &&
      progress_ != Progress::kFinished) {
    // A client that does not read its replies: close at once rather than hold them.
    if (progress_ == Progress::kServing) progressTo(Progress::kFailed);
    out_.clear();
    unsentRequests_ = 0;
    reason = CloseReason::kOutputLimit;
  }
  if (timing != nullptr && unsentRequests_ > 0 && out_.empty()) {
    timing->completed = unsentRequests_;
    timing->since = unsentSince_;
    unsentRequests_ = 0;
  }
  if (progress_ != Progress::kServing || (ended_ && in_.empty())) in_.clear();
  size_t shrunk = 0;
  shrunk += out_.shrinkToFit(kKeepIdleCapacity);
  shrunk += in_.shrinkToFit(kKeepIdleCapacity);
  if (shrunk > 0) ServerStats::add(stats_.bufferBytesFreed, shrunk);

  // Decide what the reactor must do next while this worker still owns the strand: once
  // scheduled_ is cleared below, another worker may run service() at any moment.
  ConnectionRequest next{};
  bool hasNext = false;
  if (progress_ != Progress::kFinished) {
    if (reason) {
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
      reason = CloseReason::kProtocolError;
    } else if (ended_ && !parseCapped_) {
      progressTo(Progress::kFinished);
      hasNext = true;
      next = ConnectionRequest::kClose;
      reason = peerClosed_ ? CloseReason::kEof : CloseReason::kDrain;
    }
  }

  const int64_t now = steadyMs();  // the vDSO clock: no system call
  bool resume = false;
  bool more = false;
  ConnectionPtr self;  // taken only when something is posted: the common path costs no refcount
  if (hasNext) self = shared_from_this();
  {
    MutexLock lock(mu_);
    if (state_ != State::kAborted) {
      const size_t held = in_.size() + out_.size();
      stats_.buffered.add(static_cast<int64_t>(held) - static_cast<int64_t>(published_));
      strandBytes_ = held;
      unsent_ = out_.size();
    }
    if (reason && !hasReason_) {
      hasReason_ = true;
      reason_ = *reason;
    }
    // The deadline clocks (see checkDeadlines): progress restarts them, idleness starts one.
    if (progress_ != Progress::kServing) {
      requestSince_ = 0;
    } else if (completed_ > 0 || in_.empty()) {
      requestSince_ = !in_.empty() || !inbox_.empty() ? now : 0;
    } else if (requestSince_ == 0) {
      requestSince_ = now;
    }
    if (out_.empty()) {
      sendSince_ = softSince_ = 0;
    } else {
      if (sentBytes > 0 || sendSince_ == 0) sendSince_ = now;
      if (protocol_.outputSoftLimit != 0 && owed > protocol_.outputSoftLimit) {
        if (softSince_ == 0) softSince_ = now;
      } else {
        softSince_ = 0;
      }
    }
    if (strandBytes_ == 0 && inbox_.empty()) idleSince_ = now;
    if (state_ == State::kReadPaused && inbox_.size() + strandBytes_ < resumeBelow_) {
      transitionTo(State::kOpen);
      resume = true;
      if (!self) self = shared_from_this();
    }
    // Input waiting behind a capped parse is not "more": the strand goes on when the socket
    // takes replies (writable_), not before.
    more = state_ != State::kAborted &&
           ((!inbox_.empty() && progress_ == Progress::kServing && !parseCapped_) ||
            inputEnded(state_) != eof || writable_ || yielded);
    // When nothing more is pending, release the strand. Otherwise keep it: the caller queues the
    // connection again, behind other connections' work.
    if (!more) scheduled_ = false;
  }
  // From here on only locals: the strand may already be running on another worker.
  if (hasNext) owner_.post(self, next);
  if (resume) owner_.post(std::move(self), ConnectionRequest::kResumeReading);
  return more;
}

size_t Connection::parseInput(bool eof, bool peerClosed, bool& capped) noexcept {
  const Framing framing = protocol_.framing;
  const size_t cap = protocol_.outputCap();
  size_t requests = 0;
  for (;;) {
    if (out_.size() >= cap) {
      capped = true;
      break;
    }
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
  if (eof && !capped && !in_.empty() && progress_ == Progress::kServing) {
    // A request cut short: a length frame at the peer's EOF, or anything unfinished at a drain.
    ServerStats::add(stats_.truncated, 1);
    in_.clear();
  }
  if (requests) ServerStats::add(stats_.requests, requests);
  requestsServed_ += requests;
  return requests;
}

bool Connection::flushOutput(size_t& sentTotal) noexcept {
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
  sentTotal += sent;
  return alive;
}

}  // namespace reverb
