// threaded: the article's architecture in C++ — blocking sockets and one thread per connection,
// reversing each chunk it reads — without its bugs: every send is completed (partial sends looped),
// EINTR is retried, a closed peer cannot kill the process (MSG_NOSIGNAL), and shutdown wakes every
// connection thread and waits for all of them before exiting. This is the row the article occupies.
// Threads: main accepts; one detached thread per connection (256 KiB stacks, so 10,000 idle
// connections fit); SIGINT/SIGTERM are taken by sigwait() in main's helper thread.
//
// Usage: threaded [--listen HOST:PORT] [--framing chunk|line|length] [--max-line N] [--max-frame N]
// Prints "threaded ready: listening on HOST:PORT framing=F" on stderr once it accepts connections.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "base/net.h"
#include "in_place.h"
#include "start_up.h"

namespace reverb::baseline {
namespace {

constexpr size_t kStackSize = 256 * 1024;
constexpr size_t kReadSize = 16 * 1024;

// Registry: the live connection sockets, so shutdown can wake their threads and wait for them.
// Threading: thread-safe.
class Registry {
 public:
  // Returns false once stopping: the caller closes fd itself.
  bool add(int fd) {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    fds_.insert(fd);
    return true;
  }
  // Called by a connection thread as its last act: closes fd under the lock, so stop() never
  // shuts down a descriptor number that was already reused.
  void remove(int fd) {
    std::lock_guard lock(mutex_);
    fds_.erase(fd);
    ::close(fd);
    if (fds_.empty()) drained_.notify_all();
  }
  // Wakes every connection thread (their recv returns 0) and waits until all have finished.
  void stopAndWait() {
    std::unique_lock lock(mutex_);
    stopping_ = true;
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    drained_.wait(lock, [&] { return fds_.empty(); });
  }

 private:
  std::mutex mutex_;
  std::condition_variable drained_;
  std::unordered_set<int> fds_;
  bool stopping_ = false;
};

// Never destroyed: a detached thread may still be returning from remove() when main exits.
Registry& registry = *new Registry;
Framing gFraming = Framing::kChunk;
FrameLimits gLimits;

bool sendAll(int fd, const char* p, size_t n) noexcept {
  while (n > 0) {
    ssize_t sent = ::send(fd, p, n, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

void serve(int fd) {
  char buffer[kReadSize];
  InPlaceReverser reverser(gFraming, gLimits);
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    bool eof = n == 0;
    auto reply = reverser.feed(buffer, static_cast<size_t>(n), eof);
    if (!reply || !sendAll(fd, reply->data(), reply->size()) || eof) break;
  }
}

void* connectionThread(void* arg) {
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  serve(fd);
  registry.remove(fd);
  return nullptr;
}

// Starts a detached thread for fd; on failure closes fd and says why.
void startConnection(int fd) {
  if (!registry.add(fd)) {
    ::close(fd);
    return;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackSize);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, connectionThread,
                          reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    std::fprintf(stderr, "threaded: cannot start a connection thread: %s\n", std::strerror(rc));
    registry.remove(fd);
  }
}

}  // namespace
}  // namespace reverb::baseline

int main(int argc, char** argv) {
  using namespace reverb;
  using namespace reverb::baseline;
  auto started = startUp("threaded",
                         "threaded: one blocking thread per connection (a benchmark baseline)",
                         argc, argv);
  if (int* status = std::get_if<int>(&started)) return *status;
  StartUp& s = std::get<StartUp>(started);
  gFraming = s.framing;
  gLimits = s.limits;
  // Every thread, main included, blocks the stop signals (startUp did, before any thread starts);
  // only the waiter thread receives them.
  const sigset_t stop = s.stopSignals;
  int listenFd = s.listener.get();
  // listenOn makes non-blocking sockets; this server blocks in accept().
  ::fcntl(listenFd, F_SETFL, ::fcntl(listenFd, F_GETFL) & ~O_NONBLOCK);
  std::atomic<bool> stopRequested{false};
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&stop, &signal);
    stopRequested = true;
    // Wakes the blocked accept() (it fails with EINVAL), which ends the accept loop.
    ::shutdown(listenFd, SHUT_RDWR);
  });
  std::fprintf(stderr, "threaded ready: listening on %s framing=%s\n", s.bound.toString().c_str(),
               s.framingName.c_str());

  for (;;) {
    int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      startConnection(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      // Out of descriptors or memory: back off briefly instead of failing in a tight loop.
      timespec pause{0, 10'000'000};
      nanosleep(&pause, nullptr);
      continue;
    }
    break;  // EINVAL after the waiter shut the listener down, or a real failure
  }
  int status = 0;
  if (!stopRequested) {
    std::perror("threaded: accept");
    status = 1;
    ::kill(::getpid(), SIGTERM);  // releases the waiter thread
  }
  waiter.join();
  registry.stopAndWait();
  return status;
}
