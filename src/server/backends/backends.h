// The backend registry: the one place that knows every I/O backend this build has, which ones this
// kernel can run, and how to make one (Seastar's reactor_backend_selector, muduo's DefaultPoller).
// A new backend (io_uring) is added here and in its own file, and nowhere else: `--backend`, its
// help text, `reverbd --list-backends` and Server::create all read this registry.
//
// Threading: every function is thread-safe (no shared state; probes open and close their own fds).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "server/io_backend.h"

namespace reverb {

// kAuto: the first backend, in preference order, that this kernel can run.
enum class BackendKind : uint8_t { kAuto, kIoUring, kEpoll };

// "auto", "io_uring", "epoll".
std::string_view toString(BackendKind kind) noexcept;
// The kind named `name` ("auto" or a backend's name); nullopt for a name this build does not have.
std::optional<BackendKind> parseBackend(std::string_view name) noexcept;

struct BackendInfo {
  BackendKind kind;
  std::string_view name;
  bool available;      // this kernel (and the process's limits) can run it now
  std::string reason;  // why not, when !available ("epoll_create1: Too many open files")
};

// Every backend this build has, in preference order (kAuto picks the first available one). Probes
// the kernel: call it at start-up, not on a hot path.
std::vector<BackendInfo> availableBackends();

// Makes the backend `kind` names. kAuto resolves to the first available backend; a named backend
// that cannot run here fails with the reason, and so does kAuto when none can run.
Result<std::unique_ptr<IoBackend>> makeBackend(BackendKind kind);

}  // namespace reverb
