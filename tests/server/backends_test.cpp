// The backend registry in-process: names round-trip, epoll is listed and available on any Linux
// this project supports, and makeBackend obeys the kind it is given.
#include <gtest/gtest.h>

#include "server/backends/backends.h"

namespace reverb {
namespace {

TEST(BackendsTest, NamesRoundTrip) {
  for (BackendKind kind : {BackendKind::kAuto, BackendKind::kEpoll}) {
    EXPECT_EQ(parseBackend(toString(kind)), kind) << toString(kind);
  }
  EXPECT_EQ(parseBackend("kqueue"), std::nullopt);
  EXPECT_EQ(parseBackend(""), std::nullopt);
}

TEST(BackendsTest, EveryBackendIsListedWithAReasonWhenUnavailable) {
  std::vector<BackendInfo> backends = availableBackends();
  ASSERT_FALSE(backends.empty());
  bool epoll = false;
  for (const BackendInfo& b : backends) {
    EXPECT_EQ(parseBackend(b.name), b.kind) << b.name;
    EXPECT_EQ(b.available, b.reason.empty()) << b.name << ": " << b.reason;
    if (b.kind == BackendKind::kEpoll) epoll = b.available;
  }
  EXPECT_TRUE(epoll) << "epoll is listed as unavailable on Linux";
}

TEST(BackendsTest, MakeBackendObeysTheKind) {
  auto epoll = makeBackend(BackendKind::kEpoll);
  ASSERT_TRUE(epoll) << epoll.error().message();
  EXPECT_EQ((*epoll)->name(), "epoll");

  // kAuto is the first available backend in preference order.
  std::string first;
  for (const BackendInfo& b : availableBackends()) {
    if (b.available) {
      first = std::string(b.name);
      break;
    }
  }
  auto chosen = makeBackend(BackendKind::kAuto);
  ASSERT_TRUE(chosen) << chosen.error().message();
  EXPECT_EQ((*chosen)->name(), first);
}

}  // namespace
}  // namespace reverb
