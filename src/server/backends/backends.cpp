#include "server/backends/backends.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <array>

#include "base/net.h"
#include "server/backends/epoll.h"
#ifdef REVERB_HAVE_IO_URING
#include "server/backends/io_uring.h"
#endif

namespace reverb {
namespace {

// One row per backend, in preference order: the only list of backends in the program.
struct Entry {
  BackendKind kind;
  std::string_view name;
  // Empty when this kernel can run the backend; otherwise why not.
  std::string (*probe)();
  Result<std::unique_ptr<IoBackend>> (*create)();
};

std::string probeEpoll() {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  return fd.valid() ? std::string() : errnoError("epoll_create1").message();
}

Result<std::unique_ptr<IoBackend>> createEpoll() {
  auto backend = EpollBackend::create();
  if (!backend) return backend.error();
  return std::unique_ptr<IoBackend>(std::move(*backend));
}

#ifdef REVERB_HAVE_IO_URING
std::string probeIoUring() {
  return IoUringBackend::probe().reason;
}

Result<std::unique_ptr<IoBackend>> createIoUring() {
  // A ring can be set up on kernels that lack what the backend needs (multishot recv is 6.0):
  // the probe exercises every feature first, so `auto` falls back instead of failing later.
  if (IoUringBackend::Support support = IoUringBackend::probe(); !support.available) {
    return makeError(std::errc::function_not_supported, support.reason);
  }
  auto backend = IoUringBackend::create();
  if (!backend) return backend.error();
  spdlog::info("io_uring: {}, {} KiB of receive buffers shared by every connection",
               (*backend)->setupMode(), (*backend)->bufferBytes() / 1024);
  return std::unique_ptr<IoBackend>(std::move(*backend));
}
#endif

// Preference order for auto: io_uring where this build has it and the kernel runs it, then epoll.
constexpr std::array kBackends{
#ifdef REVERB_HAVE_IO_URING
    Entry{BackendKind::kIoUring, "io_uring", probeIoUring, createIoUring},
#endif
    Entry{BackendKind::kEpoll, "epoll", probeEpoll, createEpoll},
};

const Entry* find(BackendKind kind) noexcept {
  for (const Entry& e : kBackends) {
    if (e.kind == kind) return &e;
  }
  return nullptr;
}

}  // namespace

std::string_view toString(BackendKind kind) noexcept {
  if (kind == BackendKind::kAuto) return "auto";
  const Entry* e = find(kind);
  return e ? e->name : "?";
}

std::optional<BackendKind> parseBackend(std::string_view name) noexcept {
  if (name == "auto") return BackendKind::kAuto;
  for (const Entry& e : kBackends) {
    if (e.name == name) return e.kind;
  }
  return std::nullopt;
}

std::vector<BackendInfo> availableBackends() {
  std::vector<BackendInfo> out;
  out.reserve(kBackends.size());
  for (const Entry& e : kBackends) {
    std::string reason = e.probe();
    const bool available = reason.empty();
    out.push_back(BackendInfo{e.kind, e.name, available, std::move(reason)});
  }
  return out;
}

Result<std::unique_ptr<IoBackend>> makeBackend(BackendKind kind) {
  if (kind != BackendKind::kAuto) {
    const Entry* e = find(kind);
    if (e == nullptr) return makeError(std::errc::invalid_argument, "unknown I/O backend");
    // Creating is the real probe: its error says why this kernel cannot run the backend.
    auto backend = e->create();
    if (backend) spdlog::info("I/O backend: {} (asked for by name)", e->name);
    return backend;
  }
  std::string why;
  for (const Entry& e : kBackends) {
    auto backend = e.create();
    if (backend) {
      // One line that says why this backend: the ones before it could not run here.
      spdlog::info("I/O backend: {} (auto: {})", e.name,
                   why.empty() ? "the first choice, and this kernel runs it" : why);
      return backend;
    }
    why += (why.empty() ? "" : "; ") + std::string(e.name) +
           " unavailable: " + backend.error().message();
  }
  return makeError(std::errc::function_not_supported, "no I/O backend can run here (" + why + ")");
}

}  // namespace reverb
