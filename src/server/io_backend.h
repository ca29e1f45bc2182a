// IoBackend: how the reactor learns about socket I/O, in the shape of a completion API.
//
// A backend delivers *bytes and events*, never bare readiness: it accepts, it receives into
// buffers it owns and hands them to IoEvents::onData, and it reports EOF and errors. This is the
// natural shape of io_uring (multishot accept and recv into a buffer ring) and costs epoll nothing
// (the epoll backend calls accept4/recv itself), so a completion-based backend plugs in without
// reshaping the reactor, the connections or the workers.
//
// Writes are not the backend's: workers send() replies directly on the connection's socket. When
// a send would block, the reactor asks the backend for one onWritable() notification.
//
// Threading: every method is loop-thread only (the thread that calls poll()), except wake(), which
// is thread-safe. A backend borrows Connections: the reactor keeps each one alive from
// addConnection() until after removeConnection().
#pragma once

#include <string_view>

#include "base/net.h"
#include "base/result.h"

namespace reverb {

class Connection;

// IoEvents: the reactor's side of a backend. Called on the loop thread, from inside poll() (or
// from acceptBacklog/finishReading); the Reactor checks that thread in every callback.
class IoEvents {
 public:
  // A new connection; the callee takes the fd.
  virtual void onAccept(UniqueFd fd) noexcept = 0;
  // accept failed with something other than EAGAIN/ECONNABORTED (EMFILE, ENFILE, ENOBUFS, ...).
  virtual void onAcceptError(int error) noexcept = 0;
  // Bytes received on c; `bytes` belongs to the backend and is valid only during the call.
  virtual void onData(Connection& c, std::string_view bytes) noexcept = 0;
  // The peer shut down its write side: no more bytes will come.
  virtual void onEof(Connection& c) noexcept = 0;
  // Receiving failed (ECONNRESET, ETIMEDOUT, ...), or the backend can no longer watch c (a failed
  // re-arm): the connection is dead.
  virtual void onError(Connection& c, int error) noexcept = 0;
  // After wantWritable(c): c's socket can take more bytes.
  virtual void onWritable(Connection& c) noexcept = 0;
  // After wake() from any thread.
  virtual void onWake() noexcept = 0;
  // Once per poll(), as soon as the wait returns and before any other callback.
  virtual void onPolled() noexcept = 0;

 protected:
  ~IoEvents() = default;
};

class IoBackend {
 public:
  virtual ~IoBackend() = default;

  virtual std::string_view name() const noexcept = 0;

  // Starts accepting on a listening socket (borrowed). Fails only on resource exhaustion.
  virtual Result<void> addListener(int fd) = 0;
  // Stops or restarts accepting on every listener (EMFILE back-off, drain). A failure here cannot
  // happen short of a bug, and would leave the server deaf (or spinning): the next poll() returns
  // it as an error.
  virtual void setAccepting(bool on) noexcept = 0;
  // Accepts, through onAccept, the connections already waiting in the listeners' backlogs (at most
  // `limit` per listener): the drain serves the clients the kernel has already admitted.
  virtual void acceptBacklog(IoEvents& events, int limit) noexcept = 0;

  // Starts receiving on c. Fails only on resource exhaustion; the caller then drops c.
  virtual Result<void> addConnection(Connection& c) = 0;
  // Stops every event for c. `fdClosesNow`: the caller is about to close the last reference to
  // c's fd, so the kernel drops the registration by itself.
  virtual void removeConnection(Connection& c, bool fdClosesNow) noexcept = 0;
  // Pauses or resumes receiving on c (back-pressure). A pause takes effect within the current
  // poll() (io_uring may still deliver bytes it had completed before the pause reached the
  // kernel); resuming delivers what arrived meanwhile.
  virtual void setReading(Connection& c, bool on) noexcept = 0;
  // Delivers to `events` what the kernel has already received for c, but no more than `maxBytes`
  // of it, then pauses reading c. Used by the drain on SIGTERM, which passes the room left under
  // the connection's high-water mark; setReading(c, true) reads again (to discard, while
  // lingering). Bytes the backend had taken from the kernel already (a multishot recv's last
  // completions on io_uring) are delivered whatever `maxBytes` says: they are in memory anyway.
  virtual void finishReading(IoEvents& events, Connection& c, size_t maxBytes) noexcept = 0;
  // Asks for one onWritable(c) once c's socket can take more bytes (possibly at once).
  virtual void wantWritable(Connection& c) noexcept = 0;
  // From now on, receives on c at most one read buffer per poll() round, so that a pause takes
  // effect within one buffer. For a connection close to its limits; the reactor calls it once
  // the connection holds a quarter of its high-water mark, or when --max-buffered pauses it. The
  // default does nothing: a backend that reads one buffer at a time and checks setReading
  // between reads (epoll) needs nothing more.
  virtual void readInSmallSteps(Connection& /*c*/) noexcept {}

  // Waits up to timeoutMs (-1: no limit) for events and dispatches them to `events`. Returns an
  // error only when the loop cannot go on (the wait itself failed, or a listener could not be
  // watched again); the error is logged already, and the caller ends the loop.
  virtual Result<void> poll(IoEvents& events, int timeoutMs) noexcept = 0;
  // Thread-safe: makes a poll() in progress (or the next one) return and call onWake().
  virtual void wake() noexcept = 0;
};

}  // namespace reverb
