// Mutex and MutexLock: std::mutex and std::lock_guard with clang's thread-safety annotations
// (base/thread_annotations.h), which libstdc++'s own types lack, so `-Wthread-safety` can check
// each REVERB_GUARDED_BY field against the locks its users hold (abseil's Mutex/MutexLock, muduo's
// MutexLock/MutexLockGuard). Same size, cost and behaviour as the std types they wrap.
// Threading: Mutex is thread-safe; a MutexLock belongs to the thread that made it.
#pragma once

#include <mutex>

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

}  // namespace reverb
