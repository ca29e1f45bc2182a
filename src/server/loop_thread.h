// LoopThreadChecker: knows which thread is the loop thread, and aborts with a message naming the
// function and both threads when a loop-thread-only function runs on another one (muduo's
// EventLoop::assertInLoopThread). The threading rules in reactor.h, io_backend.h and connection.h
// are checked by it, not only written down.
//
// On wherever NDEBUG is not defined (debug builds, and the default debugoptimized build the tests
// run in); with NDEBUG (release) the class is empty and every check compiles to nothing.
//
// Ownership: none. Threading: thread-safe. The checker starts bound to the thread that constructs
// it; bindToCurrentThread() moves it (Reactor::run, or a test standing in for the reactor).
#pragma once

#include <atomic>
#include <thread>

namespace reverb {

class LoopThreadChecker {
 public:
#ifndef NDEBUG
  LoopThreadChecker() noexcept : loop_(std::this_thread::get_id()) {}

  // Makes the calling thread the loop thread.
  void bindToCurrentThread() noexcept {
    loop_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  // Aborts, naming `function`, unless called on the loop thread.
  void check(const char* function) const noexcept {
    if (loop_.load(std::memory_order_relaxed) != std::this_thread::get_id()) [[unlikely]] {
      fail(function);
    }
  }

 private:
  [[noreturn]] void fail(const char* function) const noexcept;

  // Atomic because a wrong thread reads it while the loop thread may bind it: a check must report
  // the misuse, not be a data race itself. Relaxed: only the value matters, nothing is published.
  std::atomic<std::thread::id> loop_;
#else
  void bindToCurrentThread() noexcept {}
  void check(const char*) const noexcept {}
#endif
};

}  // namespace reverb

// At the top of a loop-thread-only function: REVERB_ASSERT_LOOP_THREAD(loopThread_);
#define REVERB_ASSERT_LOOP_THREAD(checker) (checker).check(__PRETTY_FUNCTION__)
