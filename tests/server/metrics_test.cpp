// The Prometheus text format (MetricsText), the service-time histogram's buckets, and the families
// an in-process Server reports while it runs, with request timing on and off.
#include "server/metrics.h"

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/net.h"
#include "server/send_ring.h"
#include "server/server.h"
#include "server/stats.h"

namespace reverb {
namespace {

using namespace std::chrono_literals;

// {"name{labels}": value} from the exposition text.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(MetricsTextTest, WritesFamiliesAndEscapesAsTheFormatSays) {
  MetricsText out;
  out.family("x_total", "counter", "a \\ backslash\nand a newline");
  out.sample("x_total", {{"path", "C:\\a \"b\"\nc"}}, uint64_t{42});
  out.gauge("y", "plain", 0.25);
  out.gauge("z", "infinite", 1.0 / 0.0, {{"a", "1"}, {"b", "2"}});
  EXPECT_EQ(out.text(),
            "# HELP x_total a \\\\ backslash\\nand a newline\n"
            "# TYPE x_total counter\n"
            "x_total{path=\"C:\\\\a \\\"b\\\"\\nc\"} 42\n"
            "# HELP y plain\n# TYPE y gauge\ny 0.25\n"
            "# HELP z infinite\n# TYPE z gauge\nz{a=\"1\",b=\"2\"} +Inf\n");
}

TEST(WorkerStatsTest, BucketBoundsAreInclusiveUpperBounds) {
  EXPECT_EQ(WorkerStats::bucketOf(0), 0u);
  EXPECT_EQ(WorkerStats::bucketOf(5'000), 0u);
  EXPECT_EQ(WorkerStats::bucketOf(5'001), 1u);
  EXPECT_EQ(WorkerStats::bucketOf(1'000'000), 7u);
  EXPECT_EQ(WorkerStats::bucketOf(10'000'000'000), kServiceTimeBoundsNs.size() - 1);
  EXPECT_EQ(WorkerStats::bucketOf(10'000'000'001), kServiceTimeBoundsNs.size());
  WorkerStats w;
  w.recordService(3, 2ms);
  w.recordBusy(5ms);
  EXPECT_EQ(w.serviceBuckets[WorkerStats::bucketOf(2'000'000)].load(), 3u);
  EXPECT_EQ(w.serviceSumNs.load(), 6'000'000u);
  EXPECT_EQ(w.busyNs.load(), 5'000'000u);
}

// A Server on 127.0.0.1:0 run by a thread. `connections` clients send `rounds` rounds of one
// 17-byte chunk each (every client sends, then every client reads its reply), so with several
// clients a worker's batch holds several strands.
std::string scrapeAfter(bool timed, int rounds, int connections = 1,
                        ReplySend replySend = ReplySend::kSend) {
  ServerConfig config;
  config.listen = {"127.0.0.1:0"};
  config.workers = 2;
  config.timeRequests = timed;
  config.backend = BackendKind::kEpoll;
  config.replySend = replySend;
  auto server = Server::create(config);
  EXPECT_TRUE(server) << server.error().message();
  if (!server) return {};
  std::thread loop([&] { EXPECT_TRUE((*server)->run()); });
  {
    std::vector<UniqueFd> clients;
    for (int c = 0; c < connections; ++c) {
      auto fd = connectTo((*server)->addresses().front());
      EXPECT_TRUE(fd);
      if (!fd) break;
      int blocking = 0;
      EXPECT_EQ(::ioctl(fd->get(), FIONBIO, &blocking), 0);
      clients.push_back(std::move(*fd));
    }
    for (int i = 0; i < rounds; ++i) {
      for (UniqueFd& fd : clients) EXPECT_EQ(::send(fd.get(), "Go Coding Ninjas.", 17, 0), 17);
      for (UniqueFd& fd : clients) {
        char reply[17];
        size_t got = 0;
        while (got < sizeof reply) {
          ssize_t n = ::recv(fd.get(), reply + got, sizeof reply - got, 0);
          if (n <= 0) break;
          got += static_cast<size_t>(n);
        }
        EXPECT_EQ(std::string_view(reply, got), ".sajniN gnidoC oG");
      }
    }
  }
  // The workers publish their counts when each strand run ends: wait for the last.
  const double requests = rounds * connections;
  std::string text;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
    MetricsText out;
    appendServerMetrics(**server, out);
    text = out.take();
    auto s = samples(text);
    if (s["reverb_requests_total"] == requests && s["reverb_connections_current"] == 0) break;
  }
  (*server)->stop();
  loop.join();
  return text;
}

TEST(ServerMetricsTest, CountsRequestsAndTimesEachOne) {
  auto s = samples(scrapeAfter(true, 20));
  EXPECT_EQ(s["reverb_requests_total"], 20);
  EXPECT_EQ(s["reverb_connections_accepted_total"], 1);
  EXPECT_EQ(s["reverb_connections_closed_total{reason=\"eof\"}"], 1);
  EXPECT_EQ(s["reverb_connections_closed_total{reason=\"idle\"}"], 0);
  EXPECT_EQ(s["reverb_connections_rejected_total"], 0);
  EXPECT_EQ(s["reverb_buffered_bytes"], 0);
  EXPECT_EQ(s["reverb_received_bytes_total"], 20 * 17);
  EXPECT_EQ(s["reverb_sent_bytes_total"], 20 * 17);
  EXPECT_EQ(s["reverb_request_service_seconds_count"], 20);
  EXPECT_EQ(s["reverb_request_service_seconds_bucket{le=\"+Inf\"}"], 20);
  EXPECT_GT(s["reverb_request_service_seconds_sum"], 0);
  EXPECT_GT(s["reverb_worker_busy_seconds_total{worker=\"0\"}"] +
                s["reverb_worker_busy_seconds_total{worker=\"1\"}"],
            0);
  EXPECT_EQ(s["reverb_workers"], 2);
  EXPECT_EQ(s["reverb_backend_info{backend=\"epoll\",sends=\"send\",framing=\"chunk\",unit="
              "\"byte\"}"],
            1);
}

TEST(ServerMetricsTest, WithoutTimingTheHistogramStaysEmpty) {
  auto s = samples(scrapeAfter(false, 5));
  EXPECT_EQ(s["reverb_requests_total"], 5);
  EXPECT_EQ(s["reverb_request_service_seconds_count"], 0);
  EXPECT_EQ(s["reverb_worker_busy_seconds_total{worker=\"0\"}"], 0);
}

TEST(ServerMetricsTest, BatchesSentThroughTheRingAreTimedToo) {
  if (auto ring = SendRing::create(); !ring) {
    GTEST_SKIP() << "no send ring on this kernel: " << ring.error().message();
  }
  auto s = samples(scrapeAfter(true, 50, 16, ReplySend::kIoUring));
  EXPECT_EQ(s["reverb_requests_total"], 800);
  EXPECT_EQ(s["reverb_request_service_seconds_count"], 800);
  EXPECT_GT(s["reverb_request_service_seconds_sum"], 0);
  EXPECT_EQ(s["reverb_backend_info{backend=\"epoll\",sends=\"io_uring\",framing=\"chunk\",unit="
              "\"byte\"}"],
            1);
}

TEST(ProcessMetricsTest, ReadsThisProcess) {
  MetricsText out;
  appendProcessMetrics(out);
  auto s = samples(out.text());
  EXPECT_GT(s["process_resident_memory_bytes"], 1e5);
  EXPECT_GT(s["process_open_fds"], 2);
  EXPECT_GE(s["process_max_fds"], s["process_open_fds"]);
  EXPECT_GT(s["process_start_time_seconds"], 1.6e9);
  EXPECT_GE(s["process_threads"], 1);
}

}  // namespace
}  // namespace reverb
