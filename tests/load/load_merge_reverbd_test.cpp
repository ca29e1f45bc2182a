// Two reverb-load processes against one reverbd at the same time, then `reverb-load merge`: the
// merged request count equals the server's own request counter (its exit line), and the merged
// p99 lies between the two generators' p99s. Real processes over loopback.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/json_value.h"
#include "support/server_process.h"
#include "support/tool_process.h"

namespace reverb::testing {
namespace {

using namespace std::chrono_literals;

JsonValue readJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = parseJson(text.str());
  EXPECT_TRUE(parsed.has_value()) << path << " is not valid JSON:\n" << text.str();
  return parsed.value_or(JsonValue{});
}

TEST(LoadMergeReverbd, TwoGeneratorsMergeToTheServersOwnCount) {
  auto server = ServerProcess::start({"--workers", "1", "--framing", "line"});
  ASSERT_TRUE(server);
  const std::string dir = ::testing::TempDir() + "reverb-merge-" + std::to_string(::getpid());
  const std::string a = dir + "-a.json";
  const std::string b = dir + "-b.json";
  const std::string merged = dir + "-merged.json";
  // --requests with no warmup: each generator issues exactly that many requests and waits for
  // every reply, so the server answers exactly their sum. Unlike settings (one connection against
  // eight, pipelined), so the two latency distributions differ.
  constexpr int kA = 6000;
  constexpr int kB = 9000;
  const std::string target = server->address().toString();
  const std::vector<std::string> common = {"--target", target, "--framing",    "line",
                                           "--warmup", "0",    "--no-progress"};
  std::vector<std::string> argsA = common;
  argsA.insert(argsA.end(), {"--connections", "1", "--requests", std::to_string(kA), "--json", a});
  std::vector<std::string> argsB = common;
  argsB.insert(argsB.end(), {"--connections", "8", "--pipeline", "4", "--requests",
                             std::to_string(kB), "--json", b});
  ToolResult runA;
  ToolResult runB;
  std::thread other([&] { runB = runTool(envOr("REVERB_LOAD"), argsB, 120s); });
  runA = runTool(envOr("REVERB_LOAD"), argsA, 120s);
  other.join();
  ASSERT_EQ(runA.exitCode, 0) << runA.err << runA.out;
  ASSERT_EQ(runB.exitCode, 0) << runB.err << runB.out;

  ToolResult merge = runTool(envOr("REVERB_LOAD"), {"merge", a, b, "--json", merged}, 60s);
  ASSERT_EQ(merge.exitCode, 0) << merge.err << merge.out;
  EXPECT_NE(merge.out.find("2 runs added"), std::string::npos) << merge.out;
  EXPECT_NE(merge.out.find("result: PASS"), std::string::npos) << merge.out;

  server->signal(SIGTERM);
  ASSERT_EQ(server->waitExit(20s), 0);
  // "stopped: N connections, M requests, ...": M. (No std::regex: GCC 12 warns inside it under
  // ASan, and CI's warnings are errors.)
  const std::string log = server->stderrText();
  const size_t stopped = log.find("stopped: ");
  ASSERT_NE(stopped, std::string::npos) << log;
  const size_t after = log.find(" connections, ", stopped);
  ASSERT_NE(after, std::string::npos) << log;
  const double serverRequests = std::stod(log.substr(after + std::strlen(" connections, ")));

  JsonValue ja = readJson(a);
  JsonValue jb = readJson(b);
  JsonValue jm = readJson(merged);
  EXPECT_EQ(ja["requests"].number, kA);
  EXPECT_EQ(jb["requests"].number, kB);
  EXPECT_EQ(jm["requests"].number, serverRequests);
  EXPECT_EQ(jm["histograms"]["latency"]["count"].number, serverRequests);
  EXPECT_EQ(jm["mismatches"].number, 0);
  EXPECT_EQ(jm["errors"].number, 0);
  const double p99a = ja["latency_us"]["p99"].number;
  const double p99b = jb["latency_us"]["p99"].number;
  const double p99 = jm["latency_us"]["p99"].number;
  EXPECT_GE(p99, std::min(p99a, p99b)) << p99a << " " << p99b;
  EXPECT_LE(p99, std::max(p99a, p99b)) << p99a << " " << p99b;
  for (const std::string& path : {a, b, merged}) std::remove(path.c_str());
}

}  // namespace
}  // namespace reverb::testing
