// TimerWheel: timers fire at or after their expiry, at most one granule late, exactly once, in
// any mix of schedule, reschedule, cancel and advance, and an empty wheel asks for no wake-up.
// The last test checks the wheel against a plain model under random operations.
#include "server/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace reverb {
namespace {

using Ms = TimerWheel::Ms;
constexpr Ms kG = TimerWheel::kGranularityMs;

// The first `now` at which advance(now) must fire a timer that expires at `expiry`.
Ms firesAt(Ms expiry) {
  return (expiry + kG - 1) / kG * kG;
}

struct Timer {
  TimerWheel::Node node;
  int fired = 0;
  Ms firedAt = -1;
};

TEST(TimerWheelTest, AnEmptyWheelAsksForNoWakeUp) {
  TimerWheel wheel(1000);
  EXPECT_FALSE(wheel.nextDue());
  int fired = 0;
  wheel.advance(1'000'000, [&](TimerWheel::Node&) { ++fired; });
  EXPECT_EQ(fired, 0);
  EXPECT_FALSE(wheel.nextDue());
}

TEST(TimerWheelTest, FiresAtOrAfterItsExpiryAndAtMostOneGranuleLate) {
  const Ms start = 5003;
  TimerWheel wheel(start);
  std::vector<Timer> timers(200);
  for (size_t i = 0; i < timers.size(); ++i) {
    timers[i].node.owner = &timers[i];
    wheel.schedule(timers[i].node, start + static_cast<Ms>(i * 37 % 5000));
  }
  for (Ms now = start; now <= start + 6000; ++now) {
    wheel.advance(now, [&](TimerWheel::Node& n) {
      auto* t = static_cast<Timer*>(n.owner);
      ++t->fired;
      t->firedAt = now;
    });
  }
  for (const Timer& t : timers) {
    ASSERT_EQ(t.fired, 1);
    EXPECT_GE(t.firedAt, t.node.expiry);
    EXPECT_LT(t.firedAt, t.node.expiry + kG);
  }
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, NextDueIsNeverAfterTheEarliestTimer) {
  TimerWheel wheel(0);
  Timer a;
  Timer b;
  wheel.schedule(a.node, 30'000);
  wheel.schedule(b.node, 1'234);
  ASSERT_TRUE(wheel.nextDue());
  EXPECT_EQ(*wheel.nextDue(), firesAt(1'234));
  wheel.cancel(b.node);
  EXPECT_EQ(*wheel.nextDue(), firesAt(30'000));
  wheel.cancel(a.node);
  EXPECT_FALSE(wheel.nextDue());
  EXPECT_FALSE(a.node.scheduled());
}

TEST(TimerWheelTest, ATimerBeyondOneTurnFiresOnItsOwnTurnOnly) {
  const Ms turn = static_cast<Ms>(TimerWheel::kSlots) * kG;
  TimerWheel wheel(0);
  Timer far;
  wheel.schedule(far.node, 2 * turn + 500);
  int fired = 0;
  auto count = [&](TimerWheel::Node&) { ++fired; };
  // Visiting its slot on the earlier turns passes it over.
  for (Ms now = 0; now < 2 * turn + 500; now += 250) wheel.advance(now, count);
  EXPECT_EQ(fired, 0);
  wheel.advance(2 * turn + 500, count);
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheelTest, ALongSleepFiresEverythingDueOnce) {
  TimerWheel wheel(0);
  std::vector<Timer> timers(1000);
  std::mt19937 rng(3);
  std::uniform_int_distribution<Ms> expiry(0, 200'000);  // several turns
  for (Timer& t : timers) {
    t.node.owner = &t;
    wheel.schedule(t.node, expiry(rng));
  }
  wheel.advance(100'000, [](TimerWheel::Node& n) { ++static_cast<Timer*>(n.owner)->fired; });
  for (const Timer& t : timers) EXPECT_EQ(t.fired, firesAt(t.node.expiry) <= 100'000 ? 1 : 0);
  wheel.advance(300'000, [](TimerWheel::Node& n) { ++static_cast<Timer*>(n.owner)->fired; });
  for (const Timer& t : timers) EXPECT_EQ(t.fired, 1);
}

TEST(TimerWheelTest, ACallbackMayRescheduleItselfEvenIntoThePast) {
  TimerWheel wheel(0);
  Timer t;
  wheel.schedule(t.node, 100);
  int fired = 0;
  wheel.advance(100, [&](TimerWheel::Node& n) {
    if (++fired == 1) wheel.schedule(n, 50);  // already due: fires once this granule ends
  });
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(t.node.scheduled());
  wheel.advance(100 + kG - 1, [&](TimerWheel::Node&) { ++fired; });
  EXPECT_EQ(fired, 1);
  wheel.advance(100 + kG, [&](TimerWheel::Node&) { ++fired; });
  EXPECT_EQ(fired, 2);
  EXPECT_FALSE(t.node.scheduled());
}

// Random schedules, reschedules, cancels and advances, checked against a map of when each timer is
// due: the end of its expiry's granule, or, for one scheduled already past, the end of the granule
// the wheel was in. After each advance(now) exactly the timers due by `now` have fired.
TEST(TimerWheelTest, AgreesWithAModelUnderRandomOperations) {
  std::mt19937 rng(11);
  Ms now = 123'456;
  TimerWheel wheel(now);
  std::vector<Timer> timers(300);
  std::map<size_t, Ms> model;  // scheduled timers and when they are due
  for (size_t i = 0; i < timers.size(); ++i) timers[i].node.owner = reinterpret_cast<void*>(i);
  std::uniform_int_distribution<int> op(0, 9);
  std::uniform_int_distribution<size_t> which(0, timers.size() - 1);
  std::uniform_int_distribution<Ms> ahead(-50, 90'000);
  std::uniform_int_distribution<Ms> step(0, 3'000);
  for (int round = 0; round < 20'000; ++round) {
    const int o = op(rng);
    const size_t i = which(rng);
    if (o < 5) {
      const Ms expiry = now + ahead(rng);
      wheel.schedule(timers[i].node, expiry);
      model[i] = std::max(firesAt(expiry), (now / kG + 1) * kG);
    } else if (o < 7) {
      wheel.cancel(timers[i].node);
      model.erase(i);
    } else {
      now += step(rng);
      std::vector<size_t> fired;
      wheel.advance(
          now, [&](TimerWheel::Node& n) { fired.push_back(reinterpret_cast<size_t>(n.owner)); });
      std::vector<size_t> due;
      for (auto it = model.begin(); it != model.end();) {
        if (it->second <= now) {
          due.push_back(it->first);
          it = model.erase(it);
        } else {
          ++it;
        }
      }
      std::sort(fired.begin(), fired.end());
      ASSERT_EQ(fired, due) << "round " << round << " at " << now;
    }
    ASSERT_EQ(wheel.size(), model.size());
    if (!model.empty()) {
      Ms earliest = INT64_MAX;
      for (auto& [index, due] : model) earliest = std::min(earliest, due);
      ASSERT_TRUE(wheel.nextDue());
      ASSERT_LE(*wheel.nextDue(), earliest);
    }
  }
}

}  // namespace
}  // namespace reverb
