// SendRing: one worker's own io_uring, used only to hand the replies of several connections to the
// kernel with one io_uring_enter instead of one send(2) each. The reactor's ring cannot be used:
// it is SINGLE_ISSUER, owned by the loop thread. This is reply path (c) of docs/BENCHMARKS.md,
// "Replies: send(2) or a ring per worker".
// Ownership: owns its ring. Threading: created and used by one worker thread; never shared.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "base/result.h"

namespace reverb {

// How the workers hand replies to the kernel. kAuto takes kIoUring when this build and kernel
// allow it, kSend otherwise.
enum class ReplySend : uint8_t { kAuto, kIoUring, kSend };
std::optional<ReplySend> parseReplySend(
    std::string_view name) noexcept;  // "auto", "io_uring", "send"
std::string_view toString(ReplySend mode) noexcept;

class SendRing {
 public:
  // At most this many sends per sendAll().
  static constexpr size_t kMaxSends = 8;
  // Replies longer than this are not worth batching (WorkerPool sends them with send(2)).
  static constexpr size_t kLargeReply = 16 * 1024;

  // Fails when the build has no io_uring, or the kernel refuses to set up a ring (ENOSYS, EPERM
  // under seccomp, kernel.io_uring_disabled); the message says which.
  static Result<std::unique_ptr<SendRing>> create();
  virtual ~SendRing() = default;

  struct Send {
    int fd = -1;
    std::string_view bytes;  // must stay valid until sendAll() returns
    ssize_t result = 0;      // out: bytes sent (possibly fewer than asked), or -errno
  };
  // Sends each item's bytes, non-blocking and with MSG_NOSIGNAL, with one io_uring_enter for all,
  // and fills in each result. A full socket gives -EAGAIN at once: nothing waits. If the ring
  // itself fails, every result is -EAGAIN and the caller sends with send(2).
  virtual void sendAll(std::span<Send> sends) noexcept = 0;
};

}  // namespace reverb
