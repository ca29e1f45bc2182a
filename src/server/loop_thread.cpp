#include "server/loop_thread.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace reverb {

#ifndef NDEBUG
void LoopThreadChecker::fail(const char* function) const noexcept {
  // std::thread::id prints only through a stream; this is the abort path, so the cost is moot.
  std::ostringstream message;
  message << "reverb: " << function << " is loop-thread only, but was called on thread "
          << std::this_thread::get_id() << "; the loop thread is "
          << loop_.load(std::memory_order_relaxed);
  std::fprintf(stderr, "%s\n", message.str().c_str());
  std::fflush(stderr);
  std::abort();
}
#endif

}  // namespace reverb
