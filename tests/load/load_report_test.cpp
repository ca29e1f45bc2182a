// The report layer: the JSON is valid and carries every required key, strings are escaped (bytes
// that are not UTF-8 become U+FFFD), the connect ceiling follows from ports, source addresses and
// TIME_WAIT settings, settings that contradict each other are refused, and command lines are
// quoted so a shell would accept them.
#include "load/report.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "load/json_writer.h"

#include "support/json_value.h"

namespace reverb::load {
namespace {

using reverb::testing::JsonValue;
using reverb::testing::parseJson;

LoadConfig loopbackConfig() {
  LoadConfig c;
  c.target = *parseAddress("127.0.0.1:2002");
  return c;
}

KernelLimits limits(int twReuse, int timestamps = 1) {
  KernelLimits l;
  l.portLow = 32768;
  l.portHigh = 60999;
  l.tcpTwReuse = twReuse;
  l.tcpTimestamps = timestamps;
  l.tcpTwReuseDelayMs = -1;
  l.rlimitNofile = 1024;
  return l;
}

TEST(LoadReportTest, ConnectCeilingFollowsPortsAddressesAndTimeWait) {
  LoadConfig c = loopbackConfig();
  c.mode = Mode::kConnect;
  // No reuse: every port waits out TIME_WAIT's 60 s.
  EXPECT_NEAR(*connectCeiling(c, limits(0)), 28232.0 / 60, 1e-6);
  // Reuse on loopback (2) or everywhere (1): after one second.
  EXPECT_NEAR(*connectCeiling(c, limits(2)), 28232.0, 1e-6);
  EXPECT_NEAR(*connectCeiling(c, limits(1)), 28232.0, 1e-6);
  // Reuse needs timestamps.
  EXPECT_NEAR(*connectCeiling(c, limits(1, 0)), 28232.0 / 60, 1e-6);
  // A configured reuse delay counts.
  KernelLimits delayed = limits(2);
  delayed.tcpTwReuseDelayMs = 500;
  EXPECT_NEAR(*connectCeiling(c, delayed), 28232.0 * 2, 1e-6);
  // Source addresses multiply it.
  c.sourceAddrs = 4;
  EXPECT_NEAR(*connectCeiling(c, limits(0)), 4 * 28232.0 / 60, 1e-6);
  // tcp_tw_reuse=2 does not apply off loopback.
  LoadConfig remote = c;
  remote.sourceAddrs = 1;
  remote.target = *parseAddress("10.0.0.1:2002");
  EXPECT_NEAR(*connectCeiling(remote, limits(2)), 28232.0 / 60, 1e-6);
  // RST leaves no TIME_WAIT.
  c.close = CloseMode::kRst;
  EXPECT_FALSE(connectCeiling(c, limits(0)).has_value());
}

TEST(LoadReportTest, PreflightStatesTheCeilingInConnectMode) {
  LoadConfig c = loopbackConfig();
  EXPECT_EQ(preflightText(c, limits(2), 1024).find("ceiling"), std::string::npos);
  c.mode = Mode::kConnect;
  std::string text = preflightText(c, limits(0), 512);
  EXPECT_NE(text.find("raised from 512 to 1024"), std::string::npos) << text;
  EXPECT_NE(text.find("ceiling from ports: 28232 x 1 / 60 s = 471 connections/s"), std::string::npos) << text;
  c.close = CloseMode::kRst;
  EXPECT_NE(preflightText(c, limits(0), 1024).find("no TIME_WAIT"), std::string::npos);
}

TEST(LoadReportTest, ContradictorySettingsAreRefused) {
  LoadConfig c = loopbackConfig();
  EXPECT_TRUE(validate(c, Framing::kChunk));
  c.pipeline = 2;
  EXPECT_FALSE(validate(c, Framing::kChunk));
  EXPECT_TRUE(validate(c, Framing::kLine));
  LoadConfig v6 = loopbackConfig();
  v6.target = *parseAddress("[::1]:2002");
  v6.sourceAddrs = 2;
  EXPECT_FALSE(validate(v6, Framing::kLine));
  LoadConfig connectWithRate = loopbackConfig();
  connectWithRate.mode = Mode::kConnect;
  connectWithRate.rate = 10;
  EXPECT_FALSE(validate(connectWithRate, Framing::kLine));
  LoadConfig requestsWithConnectRate = loopbackConfig();
  requestsWithConnectRate.connectRate = 10;
  EXPECT_FALSE(validate(requestsWithConnectRate, Framing::kLine));
}

TEST(LoadReportTest, JsonIsValidAndHasEveryRequiredKey) {
  RunDescription run;
  run.config = loopbackConfig();
  run.argv = {"reverb-load", "--message", "it's \"quoted\"\n"};
  run.machine.date = "2026-01-01T00:00:00Z";
  run.machine.nproc = 2;
  run.limits = limits(2);
  LoadReport report;
  report.seconds = 2;
  report.counters.requests = 1000;
  report.counters.errors[static_cast<size_t>(ErrorCause::kTimeout)] = 3;
  for (uint64_t v = 1000; v < 100000; v += 100) report.latency.record(v);
  std::string text = formatJson(run, report);
  auto json = parseJson(text);
  ASSERT_TRUE(json) << text;
  EXPECT_EQ((*json)["requests_per_second"].number, 500);
  EXPECT_EQ((*json)["errors"].number, 3);
  EXPECT_EQ((*json)["errors_by_cause"]["timeout"].number, 3);
  EXPECT_EQ((*json)["mismatches"].number, 0);
  EXPECT_FALSE((*json)["passed"].boolean);
  for (const char* key : {"p50", "p90", "p99", "p999", "p9999", "max"}) {
    EXPECT_TRUE((*json)["latency_us"][key].isNumber()) << key;
  }
  // The 495th of 990 values is 50.4 us; the histogram may report up to 50.4/1024 above it.
  EXPECT_GE((*json)["latency_us"]["p50"].number, 50.4);
  EXPECT_LE((*json)["latency_us"]["p50"].number, 50.4 + 50.4 / 1024);
  EXPECT_NEAR((*json)["latency_us"]["max"].number, 99.9, 0.01);
  EXPECT_TRUE((*json)["connections_per_second"].isNumber());
  const JsonValue& meta = (*json)["metadata"];
  EXPECT_EQ(meta["nproc"].number, 2);
  EXPECT_EQ(meta["limits"]["tcp_tw_reuse"].number, 2);
  EXPECT_EQ(meta["limits"]["ip_local_port_range"].array[1].number, 60999);
  EXPECT_NE(meta["command_line"].string.find("--message"), std::string::npos);
  EXPECT_EQ((*json)["latency_uncorrected_us"].kind, JsonValue::Kind::kNull);
}

std::string jsonString(std::string_view s) {
  JsonWriter json;
  json.value(s);
  return json.text();
}

TEST(LoadReportTest, JsonStringsPassUtf8AndReplaceEveryByteThatIsNot) {
  EXPECT_EQ(jsonString("plain"), "\"plain\"");
  EXPECT_EQ(jsonString("\"\\\n\r\t\x01\x1f\x7f"), R"("\"\\\n\r\t\u0001\u001f)" "\x7f\"");
  // Well-formed 2-, 3- and 4-byte sequences, the extremes included, pass through unchanged.
  const std::string valid =
      "\xC2\x80 \xC3\xA9 \xE2\x82\xAC \xEF\xBF\xBF \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
  EXPECT_EQ(jsonString(valid), "\"" + valid + "\"");
  // Each byte that does not start a well-formed sequence becomes one U+FFFD, and the bytes after
  // it are read afresh: a stray continuation byte, overlong forms, a surrogate, a value above
  // U+10FFFF, F5..FF, a truncated sequence (mid-string and at the end).
  EXPECT_EQ(jsonString("a\x80" "b"), R"("a\ufffdb")");
  EXPECT_EQ(jsonString("\xC0\xAF"), R"("\ufffd\ufffd")");
  EXPECT_EQ(jsonString("\xE0\x80\xAF"), R"("\ufffd\ufffd\ufffd")");
  EXPECT_EQ(jsonString("\xED\xA0\x80"), R"("\ufffd\ufffd\ufffd")");
  EXPECT_EQ(jsonString("\xF4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");
  EXPECT_EQ(jsonString("\xF5\xFF"), R"("\ufffd\ufffd")");
  EXPECT_EQ(jsonString("\xE2\x82x\xC3\xA9"), R"("\ufffd\ufffdx)" "\xC3\xA9\"");
  EXPECT_EQ(jsonString("\xF0\x9F\x98"), R"("\ufffd\ufffd\ufffd")");
  EXPECT_EQ(jsonString("\xC3"), R"("\ufffd")");
}

TEST(LoadReportTest, ShellJoinQuotesWhatAShellWouldSplit) {
  EXPECT_EQ(shellJoin({"reverb-load", "--rate", "100"}), "reverb-load --rate 100");
  EXPECT_EQ(shellJoin({"a", "two words", "it's"}), "a 'two words' 'it'\\''s'");
  EXPECT_EQ(shellJoin({"--target", "[::1]:2002"}), "--target [::1]:2002");
}

TEST(LoadReportTest, MicrosKeepThreeSignificantDigits) {
  EXPECT_EQ(formatMicros(1234), "1.23");
  EXPECT_EQ(formatMicros(45678), "45.7");
  EXPECT_EQ(formatMicros(987654), "988");
}

TEST(LoadReportTest, TableSaysPassOrFail) {
  RunDescription run;
  run.config = loopbackConfig();
  LoadReport ok;
  ok.seconds = 1;
  ok.counters.requests = 10;
  ok.counters.completedAll = 10;
  EXPECT_NE(formatTable(run, ok).find("PASS"), std::string::npos);
  LoadReport bad = ok;
  bad.counters.mismatches = 1;
  EXPECT_NE(formatTable(run, bad).find("FAIL (1 mismatches"), std::string::npos);
  // No reply at all, with nothing wrong counted, is no pass: nothing was checked.
  LoadReport silent;
  silent.seconds = 1;
  EXPECT_NE(formatTable(run, silent).find("FAIL (0 mismatches, 0 errors, no reply at all)"),
            std::string::npos);
}

}  // namespace
}  // namespace reverb::load
