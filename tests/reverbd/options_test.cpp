// reverbd's flags and config file (src/reverbd/options.cpp), parsed in-process as reverbd parses
// them: defaults, every key of a config file, the errors, and the inputs the config fuzzer found.
#include "reverbd/options.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "proto/proxy_protocol.h"
#include "server/send_ring.h"

namespace reverb {
namespace {

// Parses `args` (after "reverbd") into `options`.
ParseOutcome parse(std::vector<std::string> args, ReverbdOptions& options) {
  std::vector<const char*> argv = {"reverbd"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return parseCommandLine(static_cast<int>(argv.size()), argv.data(), options);
}

// Parses `reverbd --config FILE` where FILE holds `toml`.
ParseOutcome parseConfig(const std::string& toml, ReverbdOptions& options) {
  const std::string path = ::testing::TempDir() + "reverbd-options-test.toml";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << toml;
  return parse({"--config", path}, options);
}

TEST(OptionsTest, NoFlagsGiveReverbdsDefaults) {
  ReverbdOptions o;
  const ParseOutcome outcome = parse({}, o);
  ASSERT_EQ(outcome.exitCode, -1) << outcome.text;
  EXPECT_TRUE(o.config.listen.empty());
  EXPECT_EQ(o.config.workers, 0u);
  EXPECT_EQ(o.config.protocol.framing, Framing::kChunk);
  EXPECT_EQ(o.config.protocol.unit, Unit::kByte);
  EXPECT_EQ(o.config.backend, BackendKind::kAuto);
  EXPECT_EQ(o.config.replySend, ReplySend::kAuto);
  EXPECT_EQ(o.config.workerPolicy, WorkerPolicy::kBatch);
  EXPECT_EQ(o.config.drainTimeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(o.logLevel, "info");
  EXPECT_EQ(o.config.proxyProtocol, ProxyMode::kOff);
  EXPECT_FALSE(o.config.timeRequests);
  EXPECT_TRUE(o.configFile.empty());
  EXPECT_FALSE(o.listBackends);
  // The limits' documented defaults (docs/OPERATIONS.md, "Limits").
  EXPECT_EQ(o.config.limits.maxConnections, 0u);  // RLIMIT_NOFILE - 64, decided at create()
  EXPECT_EQ(o.config.limits.idleTimeout, std::chrono::seconds(300));
  EXPECT_EQ(o.config.limits.requestTimeout, std::chrono::seconds(30));
  EXPECT_EQ(o.config.limits.tcpKeepalive, std::chrono::seconds(300));
  EXPECT_EQ(o.config.limits.maxBuffered, size_t{256} << 20);
  EXPECT_EQ(o.config.limits.outputHardLimit, 0u);
  EXPECT_EQ(o.config.limits.outputSoftLimit, 0u);
  EXPECT_EQ(o.config.limits.outputSoftTime, std::chrono::seconds(60));
}

TEST(OptionsTest, ConfigFileSetsEveryKey) {
  ReverbdOptions o;
  const ParseOutcome outcome = parseConfig(
      "listen = [\"127.0.0.1:0\", \"[::1]:7\"]\nworkers = 3\nframing = \"length\"\n"
      "unit = \"codepoint\"\nmax-line = 100\nmax-frame = 200\nbackend = \"epoll\"\n"
      "reply-send = \"send\"\nworker-policy = \"other\"\nproxy-protocol = \"v2\"\nreuseport = true\nlog-format = \"json\"\n"
      "log-queue = 64\nmetrics-listen = \"127.0.0.1:0\"\n"
      "log-level = \"warn\"\ndrain-timeout = 2.5\nmax-connections = 100\nidle-timeout = 60\n"
      "request-timeout = 2.5\ntcp-keepalive = 30\nmax-buffered = \"64MiB\"\n"
      "output-hard-limit = \"512KiB\"\noutput-soft-limit = 262144\noutput-soft-seconds = 0.5\n",
      o);
  ASSERT_EQ(outcome.exitCode, -1) << outcome.text;
  EXPECT_EQ(o.config.listen, (std::vector<std::string>{"127.0.0.1:0", "[::1]:7"}));
  EXPECT_EQ(o.config.workers, 3u);
  EXPECT_EQ(o.config.protocol.framing, Framing::kLength);
  EXPECT_EQ(o.config.protocol.unit, Unit::kCodepoint);
  EXPECT_EQ(o.config.protocol.limits.maxLine, 100u);
  EXPECT_EQ(o.config.protocol.limits.maxFrame, 200u);
  EXPECT_EQ(o.config.backend, BackendKind::kEpoll);
  EXPECT_EQ(o.config.replySend, ReplySend::kSend);
  EXPECT_EQ(o.config.workerPolicy, WorkerPolicy::kOther);
  EXPECT_EQ(o.config.proxyProtocol, ProxyMode::kV2);
  EXPECT_TRUE(o.config.reusePort);
  EXPECT_EQ(o.logFormat, "json");
  EXPECT_EQ(o.logQueue, 64u);
  EXPECT_EQ(o.metricsListen, "127.0.0.1:0");
  EXPECT_TRUE(o.config.timeRequests);  // the metrics endpoint times requests
  EXPECT_FALSE(o.configFile.empty());
  EXPECT_EQ(o.logLevel, "warn");
  EXPECT_EQ(o.config.drainTimeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(o.config.limits.maxConnections, 100u);
  EXPECT_EQ(o.config.limits.idleTimeout, std::chrono::seconds(60));
  EXPECT_EQ(o.config.limits.requestTimeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(o.config.limits.tcpKeepalive, std::chrono::seconds(30));
  EXPECT_EQ(o.config.limits.maxBuffered, size_t{64} << 20);
  EXPECT_EQ(o.config.limits.outputHardLimit, size_t{512} << 10);
  EXPECT_EQ(o.config.limits.outputSoftLimit, 262144u);
  EXPECT_EQ(o.config.limits.outputSoftTime, std::chrono::milliseconds(500));
}

TEST(OptionsTest, BadValuesAndKeysAreUsageErrors) {
  for (const char* toml :
       {"framing = \"lines\"\n", "worker-policy = \"fifo\"\n", "workers = 0\n", "workers = \"many\"\n", "max-line = -1\n",
        "listen = \"nowhere\"\n", "framing = \"chunk\"\nunit = \"grapheme\"\n",
        "max-connections = -1\n", "idle-timeout = -1\n", "request-timeout = \"soon\"\n",
        "tcp-keepalive = 40000\n", "max-buffered = \"lots\"\n", "output-soft-seconds = inf\n"}) {
    ReverbdOptions o;
    const ParseOutcome outcome = parseConfig(toml, o);
    EXPECT_EQ(outcome.exitCode, 2) << toml;
    EXPECT_FALSE(outcome.text.empty()) << toml;
  }
}

// Issue 11: "wrkers = 3" used to be ignored, leaving the default the operator meant to change.
TEST(OptionsTest, UnknownConfigKeyIsAnErrorThatNamesIt) {
  ReverbdOptions o;
  const ParseOutcome outcome = parseConfig("workers = 2\nwrkers = 3\n", o);
  EXPECT_EQ(outcome.exitCode, 2);
  EXPECT_NE(outcome.text.find("unknown key 'wrkers'"), std::string::npos) << outcome.text;
}

// Every SECONDS limit rejects what is not a finite number in its range, on the command line as in
// the file, as --drain-timeout does.
TEST(OptionsTest, LimitSecondsRejectNanInfAndNegative) {
  for (const char* flag : {"idle-timeout", "request-timeout", "output-soft-seconds"}) {
    for (const char* value : {"nan", "inf", "-1", "1e12"}) {
      ReverbdOptions o;
      ParseOutcome outcome = parse({std::string("--") + flag, value}, o);
      EXPECT_EQ(outcome.exitCode, 2) << flag << " " << value;
      EXPECT_NE(outcome.text.find(flag), std::string::npos) << outcome.text;
      ReverbdOptions file;
      outcome = parseConfig(std::string(flag) + " = " + value + "\n", file);
      EXPECT_EQ(outcome.exitCode, 2) << flag << " = " << value;
    }
  }
  ReverbdOptions off;
  const ParseOutcome zero = parse({"--idle-timeout", "0", "--request-timeout", "0"}, off);
  ASSERT_EQ(zero.exitCode, -1) << zero.text;
  EXPECT_EQ(off.config.limits.idleTimeout.count(), 0);
  EXPECT_EQ(off.config.limits.requestTimeout.count(), 0);
}

TEST(OptionsTest, ConfigLogLevelReadsTheKeyAsSighupDoes) {
  const std::string path = ::testing::TempDir() + "reverbd-options-level.toml";
  std::ofstream(path, std::ios::trunc) << "workers = 2\nlog-level = \"debug\"\n";
  Result<std::string> level = configLogLevel(path);
  ASSERT_TRUE(level) << level.error().message();
  EXPECT_EQ(*level, "debug");
  std::ofstream(path, std::ios::trunc) << "workers = 2\n";
  level = configLogLevel(path);
  ASSERT_TRUE(level) << level.error().message();
  EXPECT_EQ(*level, "info");
  EXPECT_FALSE(configLogLevel(::testing::TempDir() + "no-such-reverbd-config.toml"));
}

TEST(OptionsTest, HelpAndVersionExitZeroWithTheirText) {
  ReverbdOptions o;
  const ParseOutcome help = parse({"--help"}, o);
  EXPECT_EQ(help.exitCode, 0);
  EXPECT_NE(help.text.find("--drain-timeout"), std::string::npos) << help.text;
  const ParseOutcome version = parse({"--version"}, o);
  EXPECT_EQ(version.exitCode, 0);
  EXPECT_NE(version.text.find(REVERB_VERSION), std::string::npos) << version.text;
}

// Found with tests/fuzz/fuzz_config (its input is tests/fuzz/corpus/config/regress-nan-drain-
// timeout): CLI::Range lets NaN through, and "drain-timeout = nan" became undefined behaviour
// (UBSan: nan is outside the range of long long) and a drain timeout of -2^63 ms.
TEST(OptionsRegressionTest, NotANumberIsNotADrainTimeout) {
  for (const char* value : {"nan", "-nan", "NaN", "inf", "-1", "86400.5"}) {
    ReverbdOptions o;
    ParseOutcome outcome = parseConfig(std::string("drain-timeout = ") + value + "\n", o);
    EXPECT_EQ(outcome.exitCode, 2) << value;
    EXPECT_NE(outcome.text.find("--drain-timeout"), std::string::npos) << outcome.text;
    ReverbdOptions flag;
    outcome = parse({"--drain-timeout", value}, flag);
    EXPECT_EQ(outcome.exitCode, 2) << value;
  }
  ReverbdOptions o;
  const ParseOutcome edge = parse({"--drain-timeout", "86400"}, o);
  ASSERT_EQ(edge.exitCode, -1) << edge.text;
  EXPECT_EQ(o.config.drainTimeout, std::chrono::seconds(86400));
}

}  // namespace
}  // namespace reverb
