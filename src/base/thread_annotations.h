// Clang's thread-safety annotations (-Wthread-safety), as macros that vanish on other compilers
// (abseil's base/thread_annotations.h, muduo's Mutex.h). With them the compiler checks that every
// field marked REVERB_GUARDED_BY(mu) is touched only with `mu` held, and that a function marked
// REVERB_REQUIRES(mu) is called only with it held. std::mutex is not annotated in libstdc++, so the
// guarded fields use reverb::Mutex (base/mutex.h). Header only; no run-time cost.
#pragma once

#if defined(__clang__)
#define REVERB_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define REVERB_THREAD_ANNOTATION(x)
#endif

// On a class: its objects are a capability (a lock) named `x` in diagnostics.
#define REVERB_CAPABILITY(x) REVERB_THREAD_ANNOTATION(capability(x))
// On an RAII class: it holds a capability from its constructor to its destructor.
#define REVERB_SCOPED_CAPABILITY REVERB_THREAD_ANNOTATION(scoped_lockable)

// On a field: read or written only with the capability held.
#define REVERB_GUARDED_BY(x) REVERB_THREAD_ANNOTATION(guarded_by(x))
// On a pointer field: what it points to is read or written only with the capability held.
#define REVERB_PT_GUARDED_BY(x) REVERB_THREAD_ANNOTATION(pt_guarded_by(x))

// On a function: callers must hold (REQUIRES) or must not hold (EXCLUDES) the capability.
#define REVERB_REQUIRES(...) REVERB_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REVERB_EXCLUDES(...) REVERB_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

// On a function: it takes (ACQUIRE), tries to take (TRY_ACQUIRE, held when it returns the given
// value) or gives back (RELEASE) the capability. With no argument, on a member: `this`.
#define REVERB_ACQUIRE(...) REVERB_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define REVERB_TRY_ACQUIRE(...) REVERB_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define REVERB_RELEASE(...) REVERB_THREAD_ANNOTATION(release_capability(__VA_ARGS__))

// On a function: it checks (aborting otherwise) that the capability is held.
#define REVERB_ASSERT_CAPABILITY(x) REVERB_THREAD_ANNOTATION(assert_capability(x))
// On a function: it returns a reference to the capability `x`.
#define REVERB_RETURN_CAPABILITY(x) REVERB_THREAD_ANNOTATION(lock_returned(x))

// On a function the analysis cannot follow; say why next to every use.
#define REVERB_NO_THREAD_SAFETY_ANALYSIS REVERB_THREAD_ANNOTATION(no_thread_safety_analysis)
