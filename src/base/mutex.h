// Mutex, MutexLock and CondVar: std::mutex, std::lock_guard and std::condition_variable with
// clang's thread-safety annotations (base/thread_annotations.h), which libstdc++'s own types lack,
// so `-Wthread-safety` can check each REVERB_GUARDED_BY field against the locks its users hold
// (abseil's Mutex/MutexLock/CondVar, muduo's MutexLock/MutexLockGuard/Condition). Same size, cost
// and behaviour as the std types they wrap.
// Threading: Mutex and CondVar are thread-safe; a MutexLock belongs to the thread that made it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "base/thread_annotations.h"

namespace reverb {

class REVERB_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() REVERB_ACQUIRE() { mu_.lock(); }
  void unlock() REVERB_RELEASE() { mu_.unlock(); }
  // Named as the standard's Lockable requirement names it.
  bool try_lock() REVERB_TRY_ACQUIRE(true) {  // NOLINT(readability-identifier-naming)
    return mu_.try_lock();
  }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class REVERB_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) REVERB_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() REVERB_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// Waits on a Mutex held through a MutexLock. The wait lets the mutex go while asleep and holds it
// again before it returns, so the caller holds it throughout, as the analysis assumes. A predicate
// that reads guarded fields says so: [&]() REVERB_REQUIRES(mu) { return done_; }.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Waits until `ready()` holds or `timeout` passes; returns what ready() last returned.
  template <typename Rep, typename Period, typename Predicate>
  bool waitFor(Mutex& mu, std::chrono::duration<Rep, Period> timeout, Predicate ready)
      REVERB_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    const bool result = cv_.wait_for(lock, timeout, std::move(ready));
    lock.release();  // still held: the caller's MutexLock lets it go
    return result;
  }
  void notifyOne() noexcept { cv_.notify_one(); }
  void notifyAll() noexcept { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace reverb
