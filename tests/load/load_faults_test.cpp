// reverb-load against servers that answer wrongly on purpose (tests/load/fault_server.h): it must
// count each fault, describe it on stderr and exit 1; against the same server without a fault it
// must find nothing and exit 0, in every framing and mode. The real reverb-load binary
// ($REVERB_LOAD) runs as a child process; every run is bounded by --requests or --duration and by
// a deadline.
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/fault_server.h"
#include "support/json_value.h"
#include "support/tool_process.h"

namespace reverb::testing {
namespace {

using namespace std::chrono_literals;

struct LoadRunResult {
  ToolResult tool;
  JsonValue json;
};

std::string tempJsonPath() {
  static int counter = 0;
  return ::testing::TempDir() + "reverb-load-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) +
         ".json";
}

// Runs reverb-load against `target` with `args` plus --json (and --framing line --unit byte unless
// given); fails the test if the JSON is absent or malformed.
LoadRunResult runLoad(const SocketAddress& target, std::vector<std::string> args) {
  const std::string binary = envOr("REVERB_LOAD");
  EXPECT_FALSE(binary.empty()) << "REVERB_LOAD is not set (meson test sets it)";
  const std::string jsonPath = tempJsonPath();
  auto has = [&](const char* flag) { return std::find(args.begin(), args.end(), flag) != args.end(); };
  // The fault servers speak line framing with byte reversal unless a test says otherwise.
  if (!has("--framing")) args.insert(args.end(), {"--framing", "line"});
  if (!has("--unit")) args.insert(args.end(), {"--unit", "byte"});
  args.insert(args.begin(), {"--target", target.toString(), "--json", jsonPath, "--no-progress"});
  LoadRunResult r;
  r.tool = runTool(binary, args, 120s);
  EXPECT_FALSE(r.tool.timedOut) << r.tool.err;
  std::ifstream in(jsonPath);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = parseJson(text.str());
  EXPECT_TRUE(parsed.has_value()) << "no valid JSON in " << jsonPath << ":\n" << text.str() << "\nstderr:\n"
                                  << r.tool.err;
  if (parsed) r.json = std::move(*parsed);
  std::remove(jsonPath.c_str());
  return r;
}

double num(const JsonValue& v, const std::string& key) {
  EXPECT_TRUE(v[key].isNumber()) << key << " is missing or not a number";
  return v[key].number;
}

std::unique_ptr<FaultServer> startServer(FaultServerOptions options) {
  auto server = FaultServer::start(options);
  EXPECT_TRUE(server.has_value()) << (server ? "" : server.error().message());
  return server ? std::move(*server) : nullptr;
}

// Every key the issue requires, present and of the right type.
void expectRequiredKeys(const JsonValue& j) {
  for (const char* key : {"requests_per_second", "connections_per_second", "mismatches", "errors"}) {
    EXPECT_TRUE(j[key].isNumber()) << key;
  }
  const JsonValue& latency = j["latency_us"];
  for (const char* key : {"p50", "p90", "p99", "p999", "p9999", "max"}) {
    EXPECT_TRUE(latency[key].isNumber()) << "latency_us." << key;
  }
  const JsonValue& meta = j["metadata"];
  for (const char* key : {"date", "kernel", "cpu_model", "git_commit", "command_line"}) {
    EXPECT_EQ(meta[key].kind, JsonValue::Kind::kString) << "metadata." << key;
  }
  EXPECT_TRUE(meta["nproc"].isNumber());
  const JsonValue& limits = meta["limits"];
  for (const char* key : {"somaxconn", "tcp_tw_reuse", "rlimit_nofile"}) {
    EXPECT_TRUE(limits[key].isNumber()) << "metadata.limits." << key;
  }
  EXPECT_EQ(limits["ip_local_port_range"].array.size(), 2u);
}

class CorrectServerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CorrectServerTest, NoFaultMeansExitZeroAndEveryReplyCounted) {
  const std::string framing = GetParam();
  FaultServerOptions options;
  options.framing = *parseFraming(framing);
  auto server = startServer(options);
  ASSERT_TRUE(server);
  std::vector<std::string> args = {"--framing", framing, "--connections", "8", "--requests", "4000",
                                   "--warmup", "0", "--size-min", "1", "--size-max", "300",
                                   "--payload", framing == "line" ? "utf8" : "binary"};
  if (framing != "chunk") args.insert(args.end(), {"--pipeline", "4"});
  auto r = runLoad(server->address(), args);
  EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err << r.tool.out;
  expectRequiredKeys(r.json);
  EXPECT_EQ(num(r.json, "mismatches"), 0);
  EXPECT_EQ(num(r.json, "errors"), 0);
  EXPECT_EQ(num(r.json, "requests"), 4000);
  EXPECT_GT(num(r.json, "requests_per_second"), 0);
  EXPECT_GT(num(r.json["latency_us"], "p50"), 0);
  EXPECT_LE(num(r.json["latency_us"], "p50"), num(r.json["latency_us"], "p99"));
  EXPECT_LE(num(r.json["latency_us"], "p99"), num(r.json["latency_us"], "max"));
  // The server answered exactly the requests reverb-load counted, nothing more.
  EXPECT_EQ(server->replies(), 4000u);
  EXPECT_NE(r.tool.out.find("PASS"), std::string::npos) << r.tool.out;
}

INSTANTIATE_TEST_SUITE_P(Framings, CorrectServerTest, ::testing::Values("line", "length", "chunk"));

TEST(LoadFaultsTest, FlippedByteInEveryThousandthReplyIsCaughtEachTime) {
  for (const char* framing : {"line", "length", "chunk"}) {
    SCOPED_TRACE(framing);
    FaultServerOptions options;
    options.framing = *parseFraming(framing);
    options.fault = Fault::kFlipByte;
    options.every = 1000;
    auto server = startServer(options);
    ASSERT_TRUE(server);
    auto r = runLoad(server->address(), {"--framing", framing, "--connections", "4", "--requests", "5000",
                                         "--warmup", "0", "--size", "16"});
    EXPECT_EQ(r.tool.exitCode, 1) << r.tool.out;
    ASSERT_GE(server->faultsInjected(), 5u);
    // Every flipped reply reached reverb-load (it waits for all it is owed), and each was counted.
    EXPECT_EQ(num(r.json, "mismatches"), static_cast<double>(server->faultsInjected()));
    EXPECT_EQ(num(r.json, "errors"), 0);
    EXPECT_NE(r.tool.err.find("mismatch"), std::string::npos) << r.tool.err;
    EXPECT_NE(r.tool.err.find("differs from the expected"), std::string::npos) << r.tool.err;
    EXPECT_NE(r.tool.out.find("FAIL"), std::string::npos) << r.tool.out;
    EXPECT_FALSE(r.json["passed"].boolean);
  }
}

TEST(LoadFaultsTest, SwappedRepliesAreCaught) {
  for (const char* framing : {"line", "length"}) {
    SCOPED_TRACE(framing);
    FaultServerOptions options;
    options.framing = *parseFraming(framing);
    options.fault = Fault::kSwapReplies;
    options.every = 1000;
    auto server = startServer(options);
    ASSERT_TRUE(server);
    // Pipelined, so the reply held back is released by the next request on the connection.
    auto r = runLoad(server->address(), {"--framing", framing, "--connections", "2", "--pipeline", "4",
                                         "--duration", "1", "--warmup", "0", "--size-min", "8", "--size-max",
                                         "40"});
    EXPECT_EQ(r.tool.exitCode, 1) << r.tool.out;
    ASSERT_GE(server->faultsInjected(), 1u);
    EXPECT_GE(num(r.json, "mismatches"), 1);
    EXPECT_LE(num(r.json, "mismatches"), static_cast<double>(server->faultsInjected()));
    EXPECT_NE(r.tool.err.find("mismatch"), std::string::npos) << r.tool.err;
  }
}

TEST(LoadFaultsTest, ConnectionDroppedMidReplyIsAnEarlyEof) {
  FaultServerOptions options;
  options.fault = Fault::kDropMidReply;
  options.every = 500;
  auto server = startServer(options);
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--connections", "4", "--requests", "3000", "--warmup", "0",
                                       "--size", "32"});
  EXPECT_EQ(r.tool.exitCode, 1) << r.tool.out;
  ASSERT_GE(server->faultsInjected(), 5u);
  EXPECT_EQ(num(r.json["errors_by_cause"], "early_eof"), static_cast<double>(server->faultsInjected()))
      << r.tool.err << r.tool.out;
  EXPECT_EQ(num(r.json, "errors"), static_cast<double>(server->faultsInjected()));
  EXPECT_EQ(num(r.json, "mismatches"), 0);
  EXPECT_NE(r.tool.err.find("early_eof"), std::string::npos) << r.tool.err;
  EXPECT_NE(r.tool.err.find("16 of 33 bytes"), std::string::npos) << r.tool.err;
}

TEST(LoadFaultsTest, ConnectionResetInsteadOfAReplyIsAReset) {
  FaultServerOptions options;
  options.fault = Fault::kResetInsteadOfReply;
  options.every = 400;
  auto server = startServer(options);
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--connections", "4", "--requests", "2000", "--warmup", "0"});
  EXPECT_EQ(r.tool.exitCode, 1) << r.tool.out;
  ASSERT_GE(server->faultsInjected(), 4u);
  EXPECT_EQ(num(r.json["errors_by_cause"], "reset"), static_cast<double>(server->faultsInjected()))
      << r.tool.err;
  EXPECT_EQ(num(r.json, "mismatches"), 0);
  EXPECT_NE(r.tool.err.find("reset: recv: Connection reset by peer"), std::string::npos) << r.tool.err;
}

TEST(LoadFaultsTest, PacedConnectsKeepTheAskedConnectRate) {
  auto server = startServer({});
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--mode", "connect", "--close", "rst", "--connect-rate", "500",
                                       "--connections", "8", "--duration", "2", "--warmup", "0.2"});
  EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err;
  const double achieved = num(r.json, "connections_per_second");
  EXPECT_GT(achieved, 500 * 0.8);
  EXPECT_LT(achieved, 500 * 1.15);
  EXPECT_EQ(num(r.json, "connect_rate_asked"), 500);
  // Paced starts are measured from their intended time as well as from the actual connect().
  EXPECT_GE(num(r.json["connect_latency_us"], "p50"), num(r.json["connect_latency_uncorrected_us"], "p50"));
}

TEST(LoadFaultsTest, SilentServerIsATimeoutAndACountedRunStopsInsteadOfHanging) {
  FaultServerOptions options;
  options.fault = Fault::kNoReply;
  auto server = startServer(options);
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--connections", "2", "--requests", "100", "--warmup", "0",
                                       "--timeout", "200ms"});
  EXPECT_EQ(r.tool.exitCode, 1) << r.tool.out;
  EXPECT_GE(num(r.json["errors_by_cause"], "timeout"), 2);
  EXPECT_EQ(num(r.json, "requests"), 0);
  EXPECT_TRUE(r.json["stalled"].boolean);
  EXPECT_NE(r.tool.err.find("timeout: no complete reply"), std::string::npos) << r.tool.err;
}

TEST(LoadFaultsTest, ConnectModeChurnsAndChecksEveryReply) {
  for (const char* close : {"fin", "rst"}) {
    SCOPED_TRACE(close);
    auto server = startServer({});
    ASSERT_TRUE(server);
    auto r = runLoad(server->address(), {"--mode", "connect", "--close", close, "--connections", "4",
                                         "--requests", "600", "--warmup", "0", "--source-addrs", "3"});
    EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err << r.tool.out;
    expectRequiredKeys(r.json);
    EXPECT_EQ(num(r.json, "requests"), 600);
    EXPECT_EQ(num(r.json, "connections"), 600);
    EXPECT_GT(num(r.json, "connections_per_second"), 0);
    EXPECT_TRUE(num(r.json["connect_latency_us"], "p99") > 0);
    EXPECT_EQ(server->replies(), 600u);
    EXPECT_NE(r.tool.err.find("preflight:"), std::string::npos);
  }
}

TEST(LoadFaultsTest, ConnectModeCatchesAFlippedReply) {
  FaultServerOptions options;
  options.fault = Fault::kFlipByte;
  options.every = 100;
  auto server = startServer(options);
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--mode", "connect", "--connections", "2", "--requests", "300",
                                       "--warmup", "0", "--close", "rst"});
  EXPECT_EQ(r.tool.exitCode, 1);
  EXPECT_EQ(num(r.json, "mismatches"), static_cast<double>(server->faultsInjected()));
  EXPECT_EQ(server->faultsInjected(), 3u);
}

TEST(LoadFaultsTest, OpenLoopKeepsTheAskedRate) {
  auto server = startServer({});
  ASSERT_TRUE(server);
  auto r = runLoad(server->address(), {"--rate", "2000", "--connections", "8", "--duration", "2", "--warmup",
                                       "0.2"});
  EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err;
  expectRequiredKeys(r.json);
  const double achieved = num(r.json, "requests_per_second");
  // Bounds leave room for a stalled machine catching up; unpaced, this server does over 10x more.
  EXPECT_GT(achieved, 2000 * 0.8);
  EXPECT_LT(achieved, 2000 * 1.15);
  EXPECT_EQ(num(r.json, "rate_asked"), 2000);
  // Corrected latency counts from the intended time, so it can only be longer than uncorrected.
  EXPECT_GE(num(r.json["latency_us"], "p50"), num(r.json["latency_uncorrected_us"], "p50"));
  EXPECT_TRUE(r.json["send_delay_us"]["p99"].isNumber());
}

TEST(LoadFaultsTest, Ipv6TargetInBrackets) {
  FaultServerOptions options;
  options.listen = "[::1]:0";
  auto server = startServer(options);
  ASSERT_TRUE(server) << "IPv6 loopback (::1) is needed for this test";
  ASSERT_EQ(server->address().family(), AF_INET6);
  auto r = runLoad(server->address(), {"--requests", "200", "--warmup", "0"});
  EXPECT_EQ(r.tool.exitCode, 0) << r.tool.err;
  EXPECT_EQ(num(r.json, "requests"), 200);
}

TEST(LoadFaultsTest, RefusedTargetFailsAtStartWithASentence) {
  // A bound socket that never listens: connecting to it is refused.
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto any = parseAddress("127.0.0.1:0");
  ASSERT_EQ(::bind(fd.get(), any->get(), any->length), 0);
  auto bound = localAddress(fd.get());
  ASSERT_TRUE(bound);
  auto tool = runTool(envOr("REVERB_LOAD"), {"--target", bound->toString(), "--duration", "1"}, 60s);
  EXPECT_EQ(tool.exitCode, 1);
  EXPECT_NE(tool.err.find("Connection refused"), std::string::npos) << tool.err;
}

TEST(LoadFaultsTest, BadUsageExitsTwo) {
  const std::string binary = envOr("REVERB_LOAD");
  EXPECT_EQ(runTool(binary, {"--framing", "chunk", "--pipeline", "2"}, 30s).exitCode, 2);
  EXPECT_EQ(runTool(binary, {"--framing", "line", "--message", "a\nb"}, 30s).exitCode, 2);
  EXPECT_EQ(runTool(binary, {"--target", "nonsense"}, 30s).exitCode, 2);
  EXPECT_EQ(runTool(binary, {"--unit", "nonsense"}, 30s).exitCode, 2);
  EXPECT_EQ(runTool(binary, {"--mode", "connect", "--rate", "5"}, 30s).exitCode, 2);
  auto help = runTool(binary, {"--help"}, 30s);
  EXPECT_EQ(help.exitCode, 0);
  for (const char* flag : {"--target", "--threads", "--connections", "--pipeline", "--rate", "--mode", "--close",
                           "--source-addrs", "--connect-rate", "--duration", "--requests", "--warmup", "--timeout",
                           "--framing", "--unit", "--message", "--size", "--size-min", "--size-max", "--payload",
                           "--json"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace reverb::testing
