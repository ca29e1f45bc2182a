#include "load/merge.h"

#include <algorithm>
#include <cstdio>

#include "load/json_reader.h"

namespace reverb::load {
namespace {

// Reads the fields of one JSON object, remembering the first one that is missing or of the wrong
// kind, so a caller reads everything and then checks once.
class Fields {
 public:
  Fields(const JsonNode* node, std::string where, std::string& problem)
      : node_(node), where_(std::move(where)), problem_(problem) {
    if (node_ == nullptr || node_->kind != JsonNode::Kind::kObject) fail("", "an object");
  }

  uint64_t u64(std::string_view key) {
    const JsonNode* v = get(key);
    auto n = v ? v->asUnsigned() : std::nullopt;
    if (!n) fail(key, "a non-negative integer");
    return n.value_or(0);
  }
  double number(std::string_view key) {
    const JsonNode* v = get(key);
    auto n = v ? v->asDouble() : std::nullopt;
    if (!n) fail(key, "a number");
    return n.value_or(0);
  }
  // A number or null (nullopt).
  std::optional<double> optionalNumber(std::string_view key) {
    const JsonNode* v = get(key);
    if (v != nullptr && v->kind == JsonNode::Kind::kNull) return std::nullopt;
    return number(key);
  }
  bool boolean(std::string_view key) {
    const JsonNode* v = get(key);
    if (v == nullptr || v->kind != JsonNode::Kind::kBool) {
      fail(key, "true or false");
      return false;
    }
    return v->boolean;
  }
  std::string text(std::string_view key) {
    const JsonNode* v = get(key);
    if (v == nullptr || v->kind != JsonNode::Kind::kString) {
      fail(key, "a string");
      return {};
    }
    return v->text;
  }
  Fields object(std::string_view key) { return Fields(get(key), join(key), problem_); }
  const JsonNode* get(std::string_view key) const { return node_ ? node_->find(key) : nullptr; }

 private:
  void fail(std::string_view key, const char* what) {
    if (!problem_.empty()) return;
    problem_ = (key.empty() ? where_ : join(key)) + " is not " + what;
  }
  std::string join(std::string_view key) const {
    return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
  }

  const JsonNode* node_;
  std::string where_;
  std::string& problem_;
};

// A histogram written by report.cpp's writeHistogram.
void readHistogram(Fields histograms, std::string_view key, Histogram& out, std::string& problem) {
  Fields h = histograms.object(key);
  const std::string unit = h.text("unit");
  const uint64_t highest = h.u64("highest_trackable");
  const uint64_t digits = h.u64("significant_digits");
  Histogram::Summary summary;
  summary.count = h.u64("count");
  summary.min = h.u64("min");
  summary.max = h.u64("max");
  summary.sum = h.u64("sum");
  summary.clamped = h.u64("clamped");
  if (!problem.empty()) return;
  if (unit != "ns" || digits < 1 || digits > 5 || highest < 4 * 2048 * 1024) {
    problem = "histogram " + std::string(key) + " has a layout reverb-load does not write";
    return;
  }
  std::vector<Histogram::Bucket> buckets;
  const JsonNode* list = h.get("counts");
  if (list == nullptr || list->kind != JsonNode::Kind::kArray) {
    problem = "histogram " + std::string(key) + " has no counts array";
    return;
  }
  for (const JsonNode& pair : list->array) {
    auto lowest = pair.array.size() == 2 ? pair.array[0].asUnsigned() : std::nullopt;
    auto count = pair.array.size() == 2 ? pair.array[1].asUnsigned() : std::nullopt;
    if (!lowest || !count) {
      problem = "histogram " + std::string(key) + " has a range that is not [lowest, count]";
      return;
    }
    buckets.push_back({*lowest, *count});
  }
  out = Histogram(highest, static_cast<int>(digits));
  if (!out.restore(buckets, summary)) {
    problem = "histogram " + std::string(key) +
              "'s buckets do not fit its layout or do not add up to its count";
  }
}

// The runs must describe the same kind of load for their sum to describe one.
std::string unlike(const RunDescription& a, const RunDescription& b, const LoadReport& ra,
                   const LoadReport& rb) {
  if (a.config.mode != b.config.mode) return "mode";
  if (a.framing != b.framing) return "framing";
  if (a.unit != b.unit) return "unit";
  if (ra.openLoop != rb.openLoop) return "open or closed loop";
  if (a.config.close != b.config.close) return "close";
  return {};
}

}  // namespace

Result<RecordedRun> readRecordedRun(std::string_view json, std::string source) {
  auto invalid = [&](const std::string& why) {
    return makeError(std::errc::invalid_argument, source + ": " + why);
  };
  auto document = JsonReader::parse(json);
  if (!document) return invalid("not a JSON document");
  std::string problem;
  Fields top(&*document, "", problem);
  if (top.text("tool") != "reverb-load") return invalid("not written by reverb-load --json");
  if (top.get("histograms") == nullptr) {
    return invalid(
        "has no \"histograms\" (written by an older reverb-load): its percentiles "
        "cannot be merged, only averaged, which would be wrong");
  }

  RecordedRun recorded;
  recorded.source = source;
  RunDescription& run = recorded.run;
  LoadReport& r = recorded.report;
  LoadConfig& c = run.config;

  Fields config = top.object("config");
  auto target = parseAddress(config.text("target"));
  if (target) c.target = *target;
  const std::string mode = config.text("mode");
  c.mode = mode == "connect" ? Mode::kConnect : Mode::kRequests;
  r.openLoop = config.boolean("open_loop");
  c.threads = static_cast<int>(config.u64("threads"));
  c.connections = static_cast<int>(config.u64("connections"));
  c.pipeline = static_cast<int>(config.u64("pipeline"));
  c.rate = config.number("rate");
  c.connectRate = config.number("connect_rate");
  c.close = config.text("close") == "rst" ? CloseMode::kRst : CloseMode::kFin;
  c.sourceAddrs = static_cast<int>(config.u64("source_addrs"));
  auto seconds = [](double s) { return std::chrono::nanoseconds(static_cast<int64_t>(s * 1e9)); };
  c.duration = seconds(config.number("duration_seconds"));
  c.requests = config.u64("requests_limit");
  c.warmup = seconds(config.number("warmup_seconds"));
  c.timeout = seconds(config.number("timeout_seconds"));
  auto framing = parseFraming(config.text("framing"));
  auto unit = parseUnit(config.text("unit"));
  const std::string payload = config.text("payload");
  run.payload.sizeMin = config.u64("size_min");
  run.payload.sizeMax = config.u64("size_max");
  if (payload == "message") {
    run.payload.message = std::string(run.payload.sizeMin, '?');  // only its size is recorded
  } else if (auto kind = parsePayloadKind(payload)) {
    run.payload.kind = *kind;
  }
  run.poolSize = config.u64("distinct_messages");
  run.meanRequestBytes = config.number("mean_request_bytes");
  run.meanReplyBytes = config.number("mean_reply_bytes");
  run.payload.seed = config.u64("seed");
  if (problem.empty() &&
      (!target || !framing || !unit || (mode != "requests" && mode != "connect"))) {
    problem = "config has a target, mode, framing or unit this reverb-load does not know";
  }
  if (framing) run.framing = *framing;
  if (unit) run.unit = *unit;

  Fields metadata = top.object("metadata");
  run.machine.date = metadata.text("date");
  run.machine.kernel = metadata.text("kernel");
  run.machine.cpuModel = metadata.text("cpu_model");
  run.machine.nproc = static_cast<int>(metadata.u64("nproc"));
  run.machine.gitCommit = metadata.text("git_commit");
  run.argv = {metadata.text("command_line")};
  Fields limits = metadata.object("limits");
  run.limits.somaxconn = static_cast<long>(limits.number("somaxconn"));
  run.limits.tcpTwReuse = static_cast<int>(limits.number("tcp_tw_reuse"));
  run.limits.tcpTwReuseDelayMs = static_cast<long>(limits.number("tcp_tw_reuse_delay_ms"));
  run.limits.tcpTimestamps = static_cast<int>(limits.number("tcp_timestamps"));
  run.limits.tcpMaxTwBuckets = static_cast<long>(limits.number("tcp_max_tw_buckets"));
  run.limits.rlimitNofile = static_cast<long>(limits.number("rlimit_nofile"));
  run.limits.rlimitNofileHard = static_cast<long>(limits.number("rlimit_nofile_hard"));
  if (const JsonNode* range = limits.get("ip_local_port_range");
      range && range->array.size() == 2) {
    run.limits.portLow = static_cast<int>(range->array[0].asDouble().value_or(-1));
    run.limits.portHigh = static_cast<int>(range->array[1].asDouble().value_or(-1));
  }

  r.seconds = top.number("seconds");
  LoadCounters& n = r.counters;
  n.requests = top.u64("requests");
  n.connections = top.u64("connections");
  n.bytesSent = top.u64("bytes_sent");
  n.bytesReceived = top.u64("bytes_received");
  n.mismatches = top.u64("mismatches");
  n.completedAll = top.u64("requests_all");
  n.connectionsAll = top.get("connections_all") ? top.u64("connections_all") : 0;
  Fields errors = top.object("errors_by_cause");
  for (size_t i = 0; i < kErrorCauseCount; ++i) {
    n.errors[i] = errors.u64(toString(static_cast<ErrorCause>(i)));
  }
  r.backlogAtEnd = top.u64("backlog_at_end");
  r.interrupted = top.boolean("interrupted");
  r.stalled = top.boolean("stalled");
  r.pacedConnects = c.mode == Mode::kConnect && c.connectRate > 0;
  Fields cpu = top.object("cpu");
  r.cpu.user = cpu.number("user_seconds");
  r.cpu.system = cpu.number("system_seconds");
  if (auto busy = cpu.optionalNumber("machine_busy_percent")) r.machineBusy = *busy / 100;
  if (!problem.empty()) return invalid(problem);

  Fields histograms = top.object("histograms");
  readHistogram(histograms, "latency", r.latency, problem);
  readHistogram(histograms, "latency_uncorrected", r.latencyUncorrected, problem);
  readHistogram(histograms, "send_delay", r.sendDelay, problem);
  readHistogram(histograms, "connect_latency", r.connectLatency, problem);
  readHistogram(histograms, "connect_latency_uncorrected", r.connectLatencyUncorrected, problem);
  if (!problem.empty()) return invalid(problem);
  return recorded;
}

Result<RecordedRun> mergeRuns(const std::vector<RecordedRun>& runs) {
  if (runs.empty()) return makeError(std::errc::invalid_argument, "nothing to merge");
  RecordedRun merged = runs.front();
  merged.source.clear();
  LoadConfig& c = merged.run.config;
  LoadReport& r = merged.report;
  for (size_t i = 1; i < runs.size(); ++i) {
    const RecordedRun& next = runs[i];
    if (std::string what = unlike(merged.run, next.run, r, next.report); !what.empty()) {
      return makeError(std::errc::invalid_argument,
                       next.source + " differs from " + runs.front().source + " in its " + what +
                           ": the sum of unlike runs describes no load");
    }
    const LoadConfig& o = next.run.config;
    c.threads += o.threads;
    c.connections += o.connections;
    c.rate += o.rate;
    c.connectRate += o.connectRate;
    c.requests += o.requests;
    c.duration = std::max(c.duration, o.duration);
    const LoadReport& n = next.report;
    r.seconds = std::max(r.seconds, n.seconds);
    r.counters.add(n.counters);
    r.backlogAtEnd += n.backlogAtEnd;
    r.cpu.user += n.cpu.user;
    r.cpu.system += n.cpu.system;
    if (n.machineBusy) r.machineBusy = std::max(r.machineBusy.value_or(0), *n.machineBusy);
    r.interrupted = r.interrupted || n.interrupted;
    r.stalled = r.stalled || n.stalled;
    for (auto [into, from] : {std::pair{&r.latency, &n.latency},
                              {&r.latencyUncorrected, &n.latencyUncorrected},
                              {&r.sendDelay, &n.sendDelay},
                              {&r.connectLatency, &n.connectLatency},
                              {&r.connectLatencyUncorrected, &n.connectLatencyUncorrected}}) {
      if (!into->merge(*from)) {
        return makeError(std::errc::invalid_argument,
                         next.source + ": its histograms have another layout than " +
                             runs.front().source + "'s");
      }
    }
  }
  merged.run.argv = {"reverb-load", "merge"};
  for (const RecordedRun& run : runs) merged.run.argv.push_back(run.source);
  return merged;
}

std::string mergeSummary(const std::vector<RecordedRun>& runs, const RecordedRun& merged) {
  std::string names;
  for (const RecordedRun& run : runs) names += (names.empty() ? "" : ", ") + run.source;
  char line[256];
  std::snprintf(line, sizeof line,
                "reverb-load merge: %zu runs added (counts and histograms; rates over the longest "
                "window, %.2f s): ",
                runs.size(), merged.report.seconds);
  return line + names + "\n";
}

}  // namespace reverb::load
