#include "server/connection.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>

namespace reverb {
namespace {

// A buffer that grew past this for a burst is released once it is empty again, so an idle
// connection holds no large allocation.
constexpr size_t kKeepIdleCapacity = 64 * 1024;

}  // namespace

Connection::Connection(UniqueFd fd, const ProtocolConfig& protocol, ConnectionOwner& owner,
                       ServerStats& stats) noexcept
    : fd_(std::move(fd)),
      protocol_(protocol),
      owner_(owner),
      stats_(stats),
      framer_(protocol.framing, protocol.limits) {}

std::string Connection::peerName() const {
  SocketAddress peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd_.get(), peer.get(), &peer.length) != 0) return "(peer gone)";
  return peer.toString();
}

Connection::Delivery Connection::deliver(std::string_view bytes) {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  Delivery d;
  std::lock_guard lock(mu_);
  if (aborted_) return d;
  inbox_.append(bytes);
  if (!scheduled_) scheduled_ = d.schedule = true;
  if (inbox_.size() + strandBytes_ >= protocol_.highWater) readPaused_ = d.pauseReading = true;
  return d;
}

Connection::Delivery Connection::deliverEof(bool peerClosed) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  Delivery d;
  std::lock_guard lock(mu_);
  if (aborted_ || eof_) return d;
  eof_ = true;
  peerClosed_ = peerClosed;
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
  std::lock_guard lock(mu_);
  if (aborted_) return false;
  writable_ = true;
  if (scheduled_) return false;
  scheduled_ = true;
  return true;
}

void Connection::abort(bool shutdownSocket) noexcept {
  REVERB_ASSERT_LOOP_THREAD(owner_.loopThread());
  std::lock_guard lock(mu_);
  aborted_ = true;
  inbox_.clear();
  // A worker may be inside send() right now; shutdown, unlike close, cannot let the fd number be
  // reused under it. The fd itself closes with the last reference.
  if (shutdownSocket) ::shutdown(fd_.get(), SHUT_RDWR);
}

bool Connection::service() noexcept {
  bool eof = false;
  bool peerClosed = false;
  {
    std::lock_guard lock(mu_);
    if (aborted_) {
      scheduled_ = false;
      return false;
    }
    if (!failed_) {
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
    eof = eof_;
    peerClosed = peerClosed_;
    if (writable_) {
      writable_ = false;
      watching_ = false;
    }
  }

  if (!failed_) parseInput(eof, peerClosed);

  bool peerGone = !out_.empty() && !flushOutput();
  if (peerGone) {
    failed_ = true;
    out_.clear();
  }
  if (failed_ || (eof && in_.empty())) in_.clear();
  if (out_.empty()) out_.shrinkIfIdle(kKeepIdleCapacity);
  if (in_.empty()) in_.shrinkIfIdle(kKeepIdleCapacity);

  // Decide what the reactor must do next while this worker still owns the strand: once
  // scheduled_ is cleared below, another worker may run service() at any moment.
  ConnectionRequest next{};
  bool hasNext = false;
  if (!finished_) {
    if (peerGone) {
      finished_ = hasNext = true;
      next = ConnectionRequest::kClose;
    } else if (!out_.empty()) {
      if (!watching_) {
        watching_ = hasNext = true;
        next = ConnectionRequest::kWatchWritable;
      }
    } else if (failed_) {
      // Every reply before the bad request is in the kernel; the reactor's close sends FIN after
      // them and discards what the peer still sends.
      finished_ = hasNext = true;
      next = ConnectionRequest::kClose;
    } else if (eof) {
      finished_ = hasNext = true;
      next = ConnectionRequest::kClose;
    }
  }

  bool resume = false;
  bool more = false;
  ConnectionPtr self;  // taken only when something is posted: the common path costs no refcount
  if (hasNext) self = shared_from_this();
  {
    std::lock_guard lock(mu_);
    strandBytes_ = in_.size() + out_.size();
    if (readPaused_ && inbox_.size() + strandBytes_ < protocol_.highWater / 2) {
      readPaused_ = false;
      resume = true;
      if (!self) self = shared_from_this();
    }
    more = !aborted_ && ((!inbox_.empty() && !failed_) || eof_ != eof || writable_);
    // When nothing more is pending, release the strand. Otherwise keep it: the caller queues the
    // connection again, behind other connections' work.
    if (!more) scheduled_ = false;
  }
  // From here on only locals: the strand may already be running on another worker.
  if (hasNext) owner_.post(self, next);
  if (resume) owner_.post(std::move(self), ConnectionRequest::kResumeReading);
  return more;
}

void Connection::parseInput(bool eof, bool peerClosed) noexcept {
  const Framing framing = protocol_.framing;
  size_t requests = 0;
  for (;;) {
    Frame frame = framer_.next(in_.view(), eof && peerClosed);
    if (frame.status == Frame::Status::kNeedMore) break;
    if (frame.status == Frame::Status::kTooLong) {
      ServerStats::add(stats_.tooLong, 1);
      spdlog::warn("{}: {} over the limit of {} bytes; closing after the earlier replies",
                   peerName(), framing == Framing::kLine ? "line" : "frame",
                   framing == Framing::kLine ? protocol_.limits.maxLine : protocol_.limits.maxFrame);
      failed_ = true;
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
  if (eof && !in_.empty() && !failed_) {
    // A request cut short: a length frame at the peer's EOF, or anything unfinished at a drain.
    ServerStats::add(stats_.truncated, 1);
    in_.clear();
  }
  if (requests) ServerStats::add(stats_.requests, requests);
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
