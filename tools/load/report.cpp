#include "load/report.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmath>
#include <cstdarg>

#include "load/json_writer.h"

namespace reverb::load {
namespace {

constexpr double kTimeWaitSeconds = 60;  // TCP_TIMEWAIT_LEN, fixed in the Linux kernel

struct PercentileColumn {
  const char* label;
  const char* jsonKey;
  double percentile;
};
constexpr PercentileColumn kColumns[] = {
    {"p50", "p50", 50.0},     {"p90", "p90", 90.0},       {"p99", "p99", 99.0},
    {"p99.9", "p999", 99.9},  {"p99.99", "p9999", 99.99},
};

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  if (n < 0) return {};
  return std::string(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
}

bool targetIsLoopback(const SocketAddress& a) {
  if (a.family() == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr) >> 24) == 127;
  }
  if (a.family() == AF_INET6) {
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
  }
  return false;
}

// Seconds a TIME_WAIT port stays unusable for a new outgoing connection, with the reason.
std::pair<double, std::string> timeWaitHold(const LoadConfig& config, const KernelLimits& limits) {
  bool reuse = limits.tcpTimestamps != 0 &&
               (limits.tcpTwReuse == 1 || (limits.tcpTwReuse == 2 && targetIsLoopback(config.target)));
  if (!reuse) {
    return {kTimeWaitSeconds,
            format("TIME_WAIT holds a port %.0f s (tcp_tw_reuse=%d, tcp_timestamps=%d)", kTimeWaitSeconds,
                   limits.tcpTwReuse, limits.tcpTimestamps)};
  }
  double delay = limits.tcpTwReuseDelayMs > 0 ? limits.tcpTwReuseDelayMs / 1000.0 : 1.0;
  return {delay, format("TIME_WAIT ports are reused after %.3g s (tcp_tw_reuse=%d%s)", delay,
                        limits.tcpTwReuse, limits.tcpTwReuse == 2 ? ", loopback" : "")};
}

void writeLatency(JsonWriter& json, const char* key, const Histogram& h, bool present) {
  json.key(key);
  if (!present) {
    json.null();
    return;
  }
  json.beginObject();
  for (const auto& column : kColumns) json.key(column.jsonKey).value(h.valueAtPercentile(column.percentile) / 1e3);
  json.key("max").value(h.max() / 1e3);
  json.key("min").value(h.min() / 1e3);
  json.key("mean").value(h.mean() / 1e3);
  json.key("count").value(h.count());
  json.endObject();
}

// A histogram in mergeable form, as writeHistogramCounts writes one (its count ranges, never
// percentiles) plus the exact sum and clamped count, so `reverb-load merge` rebuilds it exactly
// (Histogram::restore) and adds several generators' histograms.
void writeHistogram(JsonWriter& json, const char* key, const Histogram& h) {
  json.key(key).beginObject();
  json.key("unit").value("ns");
  json.key("significant_digits").value(h.significantDigits());
  json.key("highest_trackable").value(h.highestTrackable());
  const Histogram::Summary s = h.summary();
  json.key("count").value(s.count);
  json.key("min").value(s.min);
  json.key("max").value(s.max);
  json.key("sum").value(s.sum);
  json.key("clamped").value(s.clamped);
  json.key("counts").beginArray();
  h.forEachCount([&](uint64_t lowest, uint64_t, uint64_t count) {
    json.inlineArray({lowest, count});
  });
  json.endArray();
  json.endObject();
}

// writeLatency's keys, from the figures a sweep's step kept.
void writeLatencyFigures(JsonWriter& json, const char* key, const LatencyFigures& f, bool present) {
  json.key(key);
  if (!present) {
    json.null();
    return;
  }
  json.beginObject();
  for (auto [name, value] : {std::pair{"p50", f.p50},
                             {"p90", f.p90},
                             {"p99", f.p99},
                             {"p999", f.p999},
                             {"p9999", f.p9999}}) {
    json.key(name).value(value / 1e3);
  }
  json.key("max").value(f.max / 1e3);
  json.key("min").value(f.min / 1e3);
  json.key("mean").value(f.mean / 1e3);
  json.key("count").value(f.count);
  json.endObject();
}

// A histogram as its count ranges, so another reader can merge it with others (Histogram::
// recordCount): "counts" is a list of [lowest value of the range, count], in nanoseconds.
void writeHistogramCounts(JsonWriter& json, const char* key, const HistogramCounts& h) {
  json.key(key).beginObject();
  json.key("unit").value("ns");
  json.key("significant_digits").value(h.significantDigits);
  json.key("highest_trackable").value(h.highestTrackable);
  json.key("count").value(h.count);
  json.key("min").value(h.min);
  json.key("max").value(h.max);
  json.key("counts").beginArray();
  for (auto [lowest, count] : h.ranges) json.inlineArray({lowest, count});
  json.endArray();
  json.endObject();
}

// The intervals of one run; `step` > 0 names the sweep step they belong to, `elapsedOffset` is
// the seconds from the sweep's (or the run's) start to this run's window.
void writeSeries(JsonWriter& json, const std::vector<IntervalFigures>& series, int step,
                 double elapsedOffset) {
  for (const IntervalFigures& f : series) {
    json.beginObject();
    if (step > 0) json.key("step").value(step);
    json.key("start_seconds").value(f.start);
    json.key("elapsed_seconds").value(elapsedOffset + f.start);
    json.key("seconds").value(f.seconds);
    json.key("requests").value(f.requests);
    json.key("requests_per_second").value(f.requestsPerSecond());
    for (auto [name, value] :
         {std::pair{"p50_us", f.p50Nanos}, {"p99_us", f.p99Nanos}, {"max_us", f.maxNanos}}) {
      json.key(name);
      if (f.requests > 0) {
        json.value(value / 1e3);
      } else {
        json.null();
      }
    }
    json.key("errors").value(f.errors);
    json.key("mismatches").value(f.mismatches);
    json.endObject();
  }
}

void writeErrorsByCause(JsonWriter& json, const LoadCounters& n) {
  json.key("errors_by_cause").beginObject();
  for (size_t i = 0; i < kErrorCauseCount; ++i)
    json.key(toString(static_cast<ErrorCause>(i))).value(n.errors[i]);
  json.endObject();
}

void writeStep(JsonWriter& json, const StepReport& r) {
  const StepReport& step = r;
  json.beginObject();
  json.key("index").value(step.index);
  json.key("kind").value(toString(step.kind));
  json.key("rate_asked").value(step.rate);
  json.key("started_at_seconds").value(step.startedAt);
  json.key("seconds").value(r.seconds);
  json.key("requests").value(r.counters.requests);
  json.key("requests_per_second").value(r.requestsPerSecond());
  json.key("errors").value(r.counters.errorTotal());
  writeErrorsByCause(json, r.counters);
  json.key("mismatches").value(r.counters.mismatches);
  json.key("backlog_at_end").value(r.backlogAtEnd);
  json.key("interrupted").value(r.interrupted);
  json.key("meets_objective");
  if (step.meets) {
    json.value(*step.meets);
  } else {
    json.null();
  }
  writeLatencyFigures(json, "latency_us", r.latency, true);
  writeLatencyFigures(json, "latency_uncorrected_us", r.latencyUncorrected, r.openLoop);
  writeLatencyFigures(json, "send_delay_us", r.sendDelay, r.openLoop);
  writeHistogramCounts(json, "latency_histogram", r.latencyCounts);
  json.endObject();
}

void writeSearch(JsonWriter& json, const SearchReport& s) {
  auto optionalNumber = [&](const char* key, auto value) {
    json.key(key);
    if (value) {
      json.value(*value);
    } else {
      json.null();
    }
  };
  json.key("slo").beginObject();
  json.key("objective").value(s.objective.text);
  json.key("percentile").value(s.objective.percentile);
  json.key("target_us").value(s.objective.targetNanos / 1e3);
  json.key("upper_bound").value(s.upperBound);
  json.key("upper_bound_from").value(s.boundFromProbe ? "closed-loop probe" : "--rate");
  json.key("closed_loop_probe");
  if (s.probe) {
    json.beginObject();
    json.key("seconds").value(s.probe->seconds);
    json.key("requests").value(s.probe->counters.requests);
    json.key("requests_per_second").value(s.probe->requestsPerSecond());
    json.key("errors").value(s.probe->counters.errorTotal());
    json.key("mismatches").value(s.probe->counters.mismatches);
    writeLatency(json, "latency_us", s.probe->latency, true);
    json.endObject();
  } else {
    json.null();
  }
  json.key("resolution").value(s.resolution);
  json.key("sustained_fraction").value(kSustainedFraction);
  optionalNumber("max_rate", s.maxRate);
  json.key("confirmed").value(s.maxRate.has_value());
  json.key("supporting_steps").beginObject();
  optionalNumber("met", s.metStep);
  optionalNumber("missed", s.missedStep);
  optionalNumber("confirmed", s.confirmStep);
  json.endObject();
  json.endObject();
}

std::string latencyRow(const char* label, const Histogram& h) {
  std::string row = format("  %-22s", label);
  for (const auto& column : kColumns) row += format(" %10s", formatMicros(h.valueAtPercentile(column.percentile)).c_str());
  row += format(" %10s %10s\n", formatMicros(h.max()).c_str(),
                formatMicros(static_cast<uint64_t>(std::llround(h.mean()))).c_str());
  return row;
}

std::string bytes(double n) {
  if (n >= 1e9) return format("%.2f GB", n / 1e9);
  if (n >= 1e6) return format("%.2f MB", n / 1e6);
  if (n >= 1e3) return format("%.2f kB", n / 1e3);
  return format("%.0f B", n);
}

std::string modeText(const LoadConfig& c) {
  if (c.mode == Mode::kConnect) {
    return format("connect (close %s%s)", std::string(toString(c.close)).c_str(),
                  c.connectRate > 0 ? format(", paced at %.6g conn/s", c.connectRate).c_str() : "");
  }
  if (c.rate > 0) return format("requests, open loop at %.6g req/s", c.rate);
  return "requests, closed loop";
}

std::string payloadText(const RunDescription& run) {
  if (run.payload.message) return format("--message of %zu B", run.payload.message->size());
  std::string kind(toString(run.payload.kind));
  if (run.payload.sizeMin == run.payload.sizeMax) return format("%s %zu B", kind.c_str(), run.payload.sizeMin);
  return format("%s %zu-%zu B", kind.c_str(), run.payload.sizeMin, run.payload.sizeMax);
}

}  // namespace

bool runPassed(const LoadReport& report) noexcept {
  // A run in which no reply came back proves nothing (a framing that never completes a request,
  // say): that is a failure, not a pass with zero mismatches.
  bool anyReply = report.counters.completedAll > 0 || report.interrupted;
  return report.counters.mismatches == 0 && report.counters.errorTotal() == 0 && !report.stalled &&
         anyReply;
}

std::string formatMicros(uint64_t nanos) {
  double us = nanos / 1e3;
  if (us < 10) return format("%.2f", us);
  if (us < 100) return format("%.1f", us);
  return format("%.0f", us);
}

std::optional<double> connectCeiling(const LoadConfig& config, const KernelLimits& limits) noexcept {
  if (config.close == CloseMode::kRst) return std::nullopt;
  int ports = limits.ephemeralPorts();
  if (ports <= 0) return std::nullopt;
  auto [hold, why] = timeWaitHold(config, limits);
  (void)why;
  return static_cast<double>(ports) * config.sourceAddrs / hold;
}

std::string preflightText(const LoadConfig& config, const KernelLimits& limits, long fileLimitBefore) {
  std::string out;
  if (fileLimitBefore != limits.rlimitNofile) {
    out += format("preflight: RLIMIT_NOFILE raised from %ld to %ld\n", fileLimitBefore, limits.rlimitNofile);
  } else {
    out += format("preflight: RLIMIT_NOFILE %ld (hard limit %ld)\n", limits.rlimitNofile, limits.rlimitNofileHard);
  }
  if (config.mode != Mode::kConnect) return out;
  const int ports = limits.ephemeralPorts();
  out += format("preflight: %d ephemeral ports (%d-%d) x %d source address%s; listen backlog cap "
                "somaxconn=%ld\n",
                ports, limits.portLow, limits.portHigh, config.sourceAddrs,
                config.sourceAddrs == 1 ? "" : "es", limits.somaxconn);
  if (config.close == CloseMode::kRst) {
    out += "preflight: --close rst: RST leaves no TIME_WAIT, so ports only bound concurrent "
           "connections, not connections/s\n";
    return out;
  }
  auto [hold, why] = timeWaitHold(config, limits);
  out += format("preflight: --close fin: the client closes first and keeps TIME_WAIT; %s\n", why.c_str());
  out += format("preflight: ceiling from ports: %d x %d / %.3g s = %.0f connections/s",
                ports, config.sourceAddrs, hold, static_cast<double>(ports) * config.sourceAddrs / hold);
  out += " (raise with --source-addrs or --close rst)\n";
  if (limits.tcpMaxTwBuckets > 0) {
    out += format("preflight: tcp_max_tw_buckets=%ld: past that many TIME_WAIT sockets the kernel "
                  "drops new ones at once\n",
                  limits.tcpMaxTwBuckets);
  }
  return out;
}

std::string shellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i) out += ' ';
    const std::string& a = argv[i];
    bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                   "0123456789-_./:=,@%+[]") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

std::string formatTable(const RunDescription& run, const LoadReport& r) {
  const LoadConfig& c = run.config;
  const LoadCounters& n = r.counters;
  std::string out;
  out += format("reverb-load: %s -> %s\n", (run.sweep.empty() ? modeText(c) : run.sweep).c_str(),
                c.target.toString().c_str());
  out += format("  framing %s, unit %s, payload %s (mean request %.1f B, reply %.1f B, %zu distinct)\n",
                std::string(toString(run.framing)).c_str(), std::string(toString(run.unit)).c_str(),
                payloadText(run).c_str(), run.meanRequestBytes, run.meanReplyBytes, run.poolSize);
  out += format("  threads %d, connections %d", c.threads, c.connections);
  if (c.mode == Mode::kRequests) out += format(", pipeline %d", c.pipeline);
  if (c.sourceAddrs > 1) out += format(", source addresses 127.0.0.1-%d", c.sourceAddrs);
  out += format("; window %.2f s after %.2f s warmup%s%s%s\n", r.seconds, c.warmup.count() / 1e9,
                run.sweep.empty() ? "" : " (the steps' windows together, each after its warmup)",
                r.interrupted ? " (interrupted)" : "",
                r.stalled ? " (stalled: nothing completed for 2 timeouts)" : "");
  out += "\n";
  out += format("  %-22s %14llu %14.1f /s", "requests", static_cast<unsigned long long>(n.requests),
                r.requestsPerSecond());
  if (r.openLoop)
    out += format("   (asked %.6g /s%s)", c.rate, run.sweep.empty() ? "" : " on average");
  out += "\n";
  out += format("  %-22s %14llu %14.1f /s", "connections", static_cast<unsigned long long>(n.connections),
                r.connectionsPerSecond());
  if (r.pacedConnects) out += format("   (asked %.6g /s)", c.connectRate);
  out += "\n";
  double secs = r.seconds > 0 ? r.seconds : 1;
  out += format("  %-22s %14s %11.2f MB/s\n", "sent", bytes(static_cast<double>(n.bytesSent)).c_str(),
                n.bytesSent / secs / 1e6);
  out += format("  %-22s %14s %11.2f MB/s\n", "received", bytes(static_cast<double>(n.bytesReceived)).c_str(),
                n.bytesReceived / secs / 1e6);
  out += "\n";
  out += format("  %-22s", "latency (us)");
  for (const auto& column : kColumns) out += format(" %10s", column.label);
  out += format(" %10s %10s\n", "max", "mean");
  out += latencyRow(r.openLoop ? "request (corrected)" : "request", r.latency);
  if (r.openLoop) {
    out += latencyRow("request (uncorrected)", r.latencyUncorrected);
    out += latencyRow("send delay", r.sendDelay);
  }
  if (r.connectLatency.count() > 0) {
    out += latencyRow(r.pacedConnects ? "connect (corrected)" : "connect", r.connectLatency);
    if (r.pacedConnects) out += latencyRow("connect (uncorrected)", r.connectLatencyUncorrected);
  }
  if (r.openLoop && r.backlogAtEnd > 0) {
    out += format("  %llu requests due in the window were never sent: every connection had --pipeline "
                  "requests in flight\n",
                  static_cast<unsigned long long>(r.backlogAtEnd));
  }
  out += "\n";
  out += format("  %-22s %14llu  (", "errors", static_cast<unsigned long long>(n.errorTotal()));
  for (size_t i = 0; i < kErrorCauseCount; ++i) {
    out += format("%s%s %llu", i ? ", " : "", std::string(toString(static_cast<ErrorCause>(i))).c_str(),
                  static_cast<unsigned long long>(n.errors[i]));
  }
  out += ")\n";
  out += format("  %-22s %14llu\n", "mismatches", static_cast<unsigned long long>(n.mismatches));
  double cpu = r.cpu.user + r.cpu.system;
  out += format("  %-22s %.2f s (user %.2f, sys %.2f) = %.2f cores; %.2f us per %s\n", "reverb-load cpu", cpu,
                r.cpu.user, r.cpu.system, cpu / secs, r.cpuMicrosPerRequest(),
                c.mode == Mode::kConnect ? "connection" : "request");
  if (r.machineBusy) {
    out += format("  %-22s %.0f%% of %d CPUs busy\n", "machine cpu", *r.machineBusy * 100, run.machine.nproc);
  }
  if (cpu / secs > 0.9 * c.threads) {
    out += format("  note: reverb-load kept its %d thread%s busy; the figures may show its limit, not the "
                  "server's (add --threads)\n",
                  c.threads, c.threads == 1 ? "" : "s");
  }
  if (runPassed(r)) {
    out += "  result: PASS (every reply matched)\n";
  } else {
    out += format("  result: FAIL (%llu mismatches, %llu errors%s%s)\n", static_cast<unsigned long long>(n.mismatches),
                  static_cast<unsigned long long>(n.errorTotal()), r.stalled ? ", stalled" : "",
                  n.completedAll == 0 ? ", no reply at all" : "");
  }
  return out;
}

std::string formatJson(const RunDescription& run, const LoadReport& r, const SweepReport* sweep) {
  const LoadConfig& c = run.config;
  const LoadCounters& n = r.counters;
  const double secs = r.seconds;
  auto perSecond = [&](uint64_t v) { return secs > 0 ? static_cast<double>(v) / secs : 0.0; };
  JsonWriter json;
  json.beginObject();
  json.key("tool").value("reverb-load");
  json.key("passed").value(runPassed(r));

  json.key("requests_per_second").value(r.requestsPerSecond());
  json.key("connections_per_second").value(r.connectionsPerSecond());
  json.key("mismatches").value(n.mismatches);
  json.key("errors").value(n.errorTotal());
  writeErrorsByCause(json, n);
  writeLatency(json, "latency_us", r.latency, true);
  writeLatency(json, "latency_uncorrected_us", r.latencyUncorrected, r.openLoop);
  writeLatency(json, "send_delay_us", r.sendDelay, r.openLoop);
  writeLatency(json, "connect_latency_us", r.connectLatency, r.connectLatency.count() > 0);
  writeLatency(json, "connect_latency_uncorrected_us", r.connectLatencyUncorrected, r.pacedConnects);

  json.key("seconds").value(secs);
  json.key("requests").value(n.requests);
  json.key("connections").value(n.connections);
  json.key("rate_asked").value(c.mode == Mode::kRequests ? c.rate : 0.0);
  json.key("connect_rate_asked").value(c.mode == Mode::kConnect ? c.connectRate : 0.0);
  json.key("backlog_at_end").value(r.backlogAtEnd);
  json.key("bytes_sent").value(n.bytesSent);
  json.key("bytes_received").value(n.bytesReceived);
  json.key("mb_per_second_sent").value(perSecond(n.bytesSent) / 1e6);
  json.key("mb_per_second_received").value(perSecond(n.bytesReceived) / 1e6);
  json.key("requests_all").value(n.completedAll);
  json.key("connections_all").value(n.connectionsAll);
  json.key("interrupted").value(r.interrupted);
  json.key("stalled").value(r.stalled);

  // Every histogram in mergeable form (reverb-load merge reads these back).
  json.key("histograms").beginObject();
  writeHistogram(json, "latency", r.latency);
  writeHistogram(json, "latency_uncorrected", r.latencyUncorrected);
  writeHistogram(json, "send_delay", r.sendDelay);
  writeHistogram(json, "connect_latency", r.connectLatency);
  writeHistogram(json, "connect_latency_uncorrected", r.connectLatencyUncorrected);
  json.endObject();

  json.key("cpu").beginObject();
  json.key("user_seconds").value(r.cpu.user);
  json.key("system_seconds").value(r.cpu.system);
  json.key("cores_used").value(secs > 0 ? (r.cpu.user + r.cpu.system) / secs : 0.0);
  json.key("us_per_request").value(r.cpuMicrosPerRequest());
  json.key("machine_busy_percent");
  if (r.machineBusy) {
    json.value(*r.machineBusy * 100);
  } else {
    json.null();
  }
  json.endObject();

  json.key("config").beginObject();
  json.key("target").value(c.target.toString());
  json.key("mode").value(toString(c.mode));
  json.key("open_loop").value(r.openLoop);
  json.key("threads").value(c.threads);
  json.key("connections").value(c.connections);
  json.key("pipeline").value(c.pipeline);
  json.key("rate").value(c.rate);
  json.key("connect_rate").value(c.connectRate);
  json.key("close").value(toString(c.close));
  json.key("source_addrs").value(c.sourceAddrs);
  json.key("duration_seconds").value(c.duration.count() / 1e9);
  json.key("requests_limit").value(c.requests);
  json.key("warmup_seconds").value(c.warmup.count() / 1e9);
  json.key("timeout_seconds").value(c.timeout.count() / 1e9);
  json.key("framing").value(toString(run.framing));
  json.key("unit").value(toString(run.unit));
  json.key("payload").value(run.payload.message ? "message" : toString(run.payload.kind));
  json.key("size_min").value(static_cast<uint64_t>(run.payload.sizeMin));
  json.key("size_max").value(static_cast<uint64_t>(run.payload.sizeMax));
  json.key("distinct_messages").value(static_cast<uint64_t>(run.poolSize));
  json.key("mean_request_bytes").value(run.meanRequestBytes);
  json.key("mean_reply_bytes").value(run.meanReplyBytes);
  json.key("seed").value(run.payload.seed);
  json.endObject();

  json.key("metadata").beginObject();
  json.key("date").value(run.machine.date);
  json.key("kernel").value(run.machine.kernel);
  json.key("cpu_model").value(run.machine.cpuModel);
  json.key("nproc").value(run.machine.nproc);
  json.key("git_commit").value(run.machine.gitCommit);
  json.key("command_line").value(shellJoin(run.argv));
  json.key("limits").beginObject();
  json.key("somaxconn").value(run.limits.somaxconn);
  json.key("ip_local_port_range").beginArray().value(run.limits.portLow).value(run.limits.portHigh).endArray();
  json.key("tcp_tw_reuse").value(run.limits.tcpTwReuse);
  json.key("tcp_tw_reuse_delay_ms").value(run.limits.tcpTwReuseDelayMs);
  json.key("tcp_timestamps").value(run.limits.tcpTimestamps);
  json.key("tcp_max_tw_buckets").value(run.limits.tcpMaxTwBuckets);
  json.key("rlimit_nofile").value(run.limits.rlimitNofile);
  json.key("rlimit_nofile_hard").value(run.limits.rlimitNofileHard);
  json.key("connect_ceiling_per_second");
  if (auto ceiling = connectCeiling(c, run.limits); ceiling && c.mode == Mode::kConnect) {
    json.value(*ceiling);
  } else {
    json.null();
  }
  json.endObject();
  json.endObject();

  json.key("timeseries_interval_seconds").value(c.seriesInterval.count() / 1e9);
  json.key("timeseries").beginArray();
  if (sweep != nullptr) {
    for (const StepReport& step : sweep->steps) {
      writeSeries(json, step.series, step.index, step.startedAt + c.warmup.count() / 1e9);
    }
  } else {
    writeSeries(json, r.series, 0, c.warmup.count() / 1e9);
  }
  json.endArray();
  if (sweep != nullptr) {
    json.key("steps").beginArray();
    for (const StepReport& step : sweep->steps) writeStep(json, step);
    json.endArray();
    if (sweep->search) writeSearch(json, *sweep->search);
  }

  json.endObject();
  return json.text() + "\n";
}

std::string formatSteps(const RunDescription& run, const SweepReport& sweep) {
  const LoadConfig& c = run.config;
  const SearchReport* search = sweep.search ? &*sweep.search : nullptr;
  std::string out;
  out += format("reverb-load: %s -> %s, step by step\n", run.sweep.c_str(),
                c.target.toString().c_str());
  out += format(
      "  each step: a %.2f s window after %.2f s warmup, %d connections, pipeline %d; latency "
      "from the intended send time\n",
      c.duration.count() / 1e9, c.warmup.count() / 1e9, c.connections, c.pipeline);
  if (search != nullptr && search->probe) {
    const LoadReport& p = *search->probe;
    out += format(
        "  closed-loop probe: %.0f req/s (p99 %s us) over %.2f s: the search starts there\n",
        p.requestsPerSecond(), formatMicros(p.latency.valueAtPercentile(99)).c_str(), p.seconds);
  }
  // The objective's own column, unless it is one the table shows anyway.
  const bool extraColumn = search != nullptr && search->objective.percentile != 50 &&
                           search->objective.percentile != 90 &&
                           search->objective.percentile != 99 &&
                           search->objective.percentile != 99.9;
  out += format("  %4s", "step");
  if (search != nullptr) out += format(" %-8s", "kind");
  out += format(" %10s %11s", "asked/s", "achieved/s");
  for (const char* label : {"p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "p99 uncorr"}) {
    out += format(" %10s", label);
  }
  if (extraColumn) out += format(" %10s", (search->objective.label() + " us").c_str());
  out += format(" %7s %10s", "errors", "mismatches");
  if (search != nullptr) out += "  " + search->objective.text;
  out += "\n";
  for (const StepReport& step : sweep.steps) {
    const StepReport& r = step;
    out += format("  %4d", step.index);
    if (search != nullptr) out += format(" %-8s", std::string(toString(step.kind)).c_str());
    out += format(" %10.6g %11.1f", step.rate, r.requestsPerSecond());
    for (uint64_t value : {r.latency.p50, r.latency.p90, r.latency.p99, r.latency.p999}) {
      out += format(" %10s", formatMicros(value).c_str());
    }
    out += format(" %10s %10s", formatMicros(r.latency.max).c_str(),
                  formatMicros(r.latencyUncorrected.p99).c_str());
    if (extraColumn) out += format(" %10s", formatMicros(r.latency.objective).c_str());
    out += format(" %7llu %10llu", static_cast<unsigned long long>(r.counters.errorTotal()),
                  static_cast<unsigned long long>(r.counters.mismatches));
    if (step.meets) out += *step.meets ? "  met" : "  missed";
    out += "\n";
  }
  if (sweep.failure) out += format("  stopped: %s\n", sweep.failure->message().c_str());
  if (sweep.interrupted) out += "  interrupted: the steps after the signal did not run\n";
  if (search == nullptr) return out;

  auto stepAt = [&](std::optional<int> index) -> const StepReport* {
    return index ? &sweep.steps[static_cast<size_t>(*index - 1)] : nullptr;
  };
  std::string headline = "max sustainable req/s at " + search->objective.text + ": ";
  if (search->maxRate) {
    out += format("  %s%.6g\n", headline.c_str(), *search->maxRate);
    std::string why;
    const std::string pct = search->objective.label();
    auto describe = [&](const StepReport* step, const char* what) {
      if (step == nullptr) return;
      why += format("%sstep %d %s at %.6g req/s (%.0f achieved, %s %s us)", why.empty() ? "" : "; ",
                    step->index, what, step->rate, step->requestsPerSecond(), pct.c_str(),
                    formatMicros(step->latency.objective).c_str());
    };
    describe(stepAt(search->metStep), "met it");
    describe(stepAt(search->missedStep), "missed it");
    describe(stepAt(search->confirmStep), "confirmed it");
    out += "    " + why + "\n";
    if (!search->missedStep) {
      out += format("    no rate above it was tried: it is the upper bound (%s)\n",
                    search->boundFromProbe ? "8x the closed-loop probe" : "--rate");
    }
  } else if (sweep.failure || sweep.interrupted) {
    out += "  " + headline + "not found: the search did not finish\n";
  } else if (search->upperBound <= 0) {
    out += "  " + headline + "not found: the closed-loop probe completed no request\n";
  } else {
    bool anyMet = false;
    for (const StepReport& step : sweep.steps) anyMet = anyMet || step.meets.value_or(false);
    out += "  " + headline +
           (anyMet ? "not confirmed: every rate that met it once missed it on the repeat run, or "
                     "the search ran out "
                     "of runs\n"
                   : "none: no rate tried met it\n");
  }
  return out;
}

}  // namespace reverb::load
