// LogLimiter: at most `burst` lines per interval, the rest counted and summarised on the next line
// let through, whatever the number of threads.
#include "server/log_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace reverb {
namespace {

using namespace std::chrono_literals;
using Clock = LogLimiter::Clock;

TEST(LogLimiterTest, LetsABurstThroughThenCountsAndSummarises) {
  LogLimiter limiter(10s, 3);
  const Clock::time_point t0 = Clock::now();
  const uint64_t before = LogLimiter::suppressedTotal();
  for (int i = 0; i < 3; ++i) {
    LogLimiter::Verdict v = limiter.check(t0 + std::chrono::milliseconds(i));
    EXPECT_TRUE(v.log);
    EXPECT_EQ(v.suppressed, 0u);
    EXPECT_EQ(LogLimiter::more(v), "");
  }
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(limiter.check(t0 + 5s).log);
  EXPECT_EQ(LogLimiter::suppressedTotal() - before, 7u);
  // Still inside the window: held back too.
  EXPECT_FALSE(limiter.check(t0 + 9s).log);

  // The next window: the first line carries the summary, then the count starts again.
  LogLimiter::Verdict v = limiter.check(t0 + 10s);
  EXPECT_TRUE(v.log);
  EXPECT_EQ(v.suppressed, 8u);
  EXPECT_EQ(v.over, 10s);
  EXPECT_EQ(LogLimiter::more(v), " (... 8 more in the last 10 s)");
  EXPECT_EQ(limiter.check(t0 + 11s).suppressed, 0u);
}

TEST(LogLimiterTest, ASummaryLongAfterTheWindowSaysHowLongItCovers) {
  LogLimiter limiter(10s, 1);
  const Clock::time_point t0 = Clock::now();
  EXPECT_TRUE(limiter.check(t0).log);
  EXPECT_FALSE(limiter.check(t0 + 1s).log);
  LogLimiter::Verdict v = limiter.check(t0 + 95s);
  EXPECT_TRUE(v.log);
  EXPECT_EQ(v.suppressed, 1u);
  EXPECT_EQ(LogLimiter::more(v), " (... 1 more in the last 95 s)");
}

TEST(LogLimiterTest, ThreadsShareOneBudget) {
  LogLimiter limiter(60s, 5);
  const Clock::time_point t0 = Clock::now();
  std::atomic<int> written{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limiter.check(t0).log) written.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(written.load(), 5);
  LogLimiter::Verdict v = limiter.check(t0 + 60s);
  EXPECT_EQ(v.suppressed, 3995u);
}

}  // namespace
}  // namespace reverb
