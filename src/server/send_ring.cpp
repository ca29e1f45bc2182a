#include "server/send_ring.h"

#if REVERB_HAVE_IO_URING
#include <liburing.h>
#endif
#include <sys/socket.h>

#include <cerrno>

namespace reverb {

std::optional<ReplySend> parseReplySend(std::string_view name) noexcept {
  if (name == "auto") return ReplySend::kAuto;
  if (name == "io_uring") return ReplySend::kIoUring;
  if (name == "send") return ReplySend::kSend;
  return std::nullopt;
}

std::string_view toString(ReplySend mode) noexcept {
  switch (mode) {
    case ReplySend::kAuto:
      return "auto";
    case ReplySend::kIoUring:
      return "io_uring";
    case ReplySend::kSend:
      return "send";
  }
  return "?";
}

#if REVERB_HAVE_IO_URING
namespace {

class UringSendRing final : public SendRing {
 public:
  explicit UringSendRing(const io_uring& ring) noexcept : ring_(ring) {}
  ~UringSendRing() override { io_uring_queue_exit(&ring_); }
  UringSendRing(const UringSendRing&) = delete;
  UringSendRing& operator=(const UringSendRing&) = delete;

  void sendAll(std::span<Send> sends) noexcept override {
    for (size_t i = 0; i < sends.size(); ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // never null: kMaxSends entries, all free
      // MSG_DONTWAIT: a full socket completes with -EAGAIN instead of waiting in the ring.
      io_uring_prep_send(sqe, sends[i].fd, sends[i].bytes.data(), sends[i].bytes.size(),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      io_uring_sqe_set_data64(sqe, i);
      sends[i].result = -EAGAIN;
    }
    // Non-blocking sends complete inside the submit, so the wait returns at once.
    if (io_uring_submit_and_wait(&ring_, static_cast<unsigned>(sends.size())) < 0) return;
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      sends[io_uring_cqe_get_data64(cqe)].result = cqe->res;
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
  }

 private:
  io_uring ring_;
};

}  // namespace

Result<std::unique_ptr<SendRing>> SendRing::create() {
  io_uring ring;
  io_uring_params params{};
  // Only this worker submits. SINGLE_ISSUER needs Linux 6.0; without it the ring works the same.
  params.flags = IORING_SETUP_SINGLE_ISSUER;
  int result = io_uring_queue_init_params(kMaxSends, &ring, &params);
  if (result == -EINVAL) {
    params = {};
    result = io_uring_queue_init_params(kMaxSends, &ring, &params);
  }
  if (result < 0) {
    errno = -result;
    return errnoError("io_uring_queue_init for a worker's send ring");
  }
  (void)io_uring_register_ring_fd(&ring);  // saves an fd lookup per enter where supported
  return std::unique_ptr<SendRing>(std::make_unique<UringSendRing>(ring));
}
#else
Result<std::unique_ptr<SendRing>> SendRing::create() {
  return makeError(std::errc::function_not_supported, "this build has no io_uring (liburing)");
}
#endif

}  // namespace reverb
