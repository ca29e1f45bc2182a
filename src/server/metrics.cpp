#include "server/metrics.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "proto/framing.h"
#include "proto/reverse.h"
#include "server/server.h"
#include "server/stats.h"

namespace reverb {
namespace {

// A sample value as the format wants it: Go's float syntax, +Inf/-Inf/NaN spelled its way.
void appendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

}  // namespace

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help) {
  // HELP text escapes only backslash and newline.
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  for (char c : help) {
    if (c == '\\') {
      text_ += "\\\\";
    } else if (c == '\n') {
      text_ += "\\n";
    } else {
      text_ += c;
    }
  }
  fmt::format_to(std::back_inserter(text_), "\n# TYPE {} {}\n", name, type);
}

void MetricsText::labels(Labels labels) {
  if (labels.size() == 0) return;
  text_ += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) text_ += ',';
    first = false;
    text_ += key;
    text_ += "=\"";
    for (char c : value) {
      if (c == '\\') {
        text_ += "\\\\";
      } else if (c == '"') {
        text_ += "\\\"";
      } else if (c == '\n') {
        text_ += "\\n";
      } else {
        text_ += c;
      }
    }
    text_ += '"';
  }
  text_ += '}';
}

void MetricsText::sample(std::string_view name, Labels labels, double value) {
  text_ += name;
  this->labels(labels);
  text_ += ' ';
  appendValue(text_, value);
  text_ += '\n';
}

void MetricsText::sample(std::string_view name, Labels labels, uint64_t value) {
  text_ += name;
  this->labels(labels);
  fmt::format_to(std::back_inserter(text_), " {}\n", value);
}

void MetricsText::counter(std::string_view name, std::string_view help, uint64_t value,
                          Labels labels) {
  family(name, "counter", help);
  sample(name, labels, value);
}

void MetricsText::gauge(std::string_view name, std::string_view help, double value, Labels labels) {
  family(name, "gauge", help);
  sample(name, labels, value);
}

void appendServerMetrics(const Server& server, MetricsText& out) {
  using S = ServerStats;
  const ServerStats& s = server.stats();
  const uint64_t accepted = S::get(s.accepted);
  const uint64_t closed = S::get(s.closed);

  out.gauge("reverb_connections_current", "Connections open now (accepted minus closed).",
            static_cast<double>(accepted >= closed ? accepted - closed : 0));
  out.counter("reverb_connections_accepted_total", "Connections accepted.", accepted);
  out.counter("reverb_connections_rejected_total",
              "Connections closed at accept, unserved, because --max-connections were open.",
              S::get(s.rejected));
  // By reason; the reasons of accepted connections sum to accepted - current ("rejected" has its
  // own family above, so that the sum stays the closed count).
  out.family("reverb_connections_closed_total", "counter",
             "Connections closed, by reason: eof, reset, idle (--idle-timeout), request_timeout, "
             "output_limit, protocol_error, drain, internal.");
  for (size_t i = 0; i < kCloseReasonCount; ++i) {
    const auto reason = static_cast<CloseReason>(i);
    if (reason == CloseReason::kRejected) continue;
    out.sample("reverb_connections_closed_total", {{"reason", std::string(toString(reason))}},
               S::get(s.closedBy[i]));
  }
  out.counter("reverb_connection_resets_total",
              "Connections that ended with a socket error (ECONNRESET, ...).", S::get(s.resets));
  out.counter("reverb_drain_force_closed_total",
              "Connections force-closed when a drain's timeout expired.", S::get(s.drainForced));
  out.counter("reverb_accept_pauses_total",
              "Times accepting paused because the process ran out of file descriptors.",
              S::get(s.acceptPauses));
  out.counter("reverb_read_pauses_total",
              "Times a connection's reading paused at its high-water mark (back-pressure).",
              S::get(s.readPauses));
  out.counter("reverb_max_buffered_pauses_total",
              "Times a connection's reading paused because all connections together held more "
              "than --max-buffered.",
              S::get(s.budgetPauses));
  out.gauge("reverb_buffered_bytes",
            "Bytes held in connection buffers now: input not yet answered and replies not yet "
            "sent (what --max-buffered bounds).",
            static_cast<double>(std::max<int64_t>(s.buffered.total(), 0)));
  out.counter("reverb_buffer_freed_bytes_total",
              "Capacity of connection buffers given back to the allocator.",
              S::get(s.bufferBytesFreed));
  out.counter("reverb_malloc_trims_total",
              "Times freed buffer memory was handed back to the kernel (malloc_trim).",
              S::get(s.mallocTrims));
  const ServerLimits& limits = server.config().limits;
  out.gauge("reverb_max_connections", "--max-connections in effect.",
            static_cast<double>(limits.maxConnections));
  out.gauge("reverb_max_buffered_bytes", "--max-buffered in effect (0: no limit).",
            static_cast<double>(limits.maxBuffered));
  out.counter("reverb_requests_total", "Requests parsed and answered.", S::get(s.requests));
  out.counter("reverb_received_bytes_total", "Bytes received from clients.", S::get(s.bytesIn));
  out.counter("reverb_sent_bytes_total", "Reply bytes the kernel accepted.", S::get(s.bytesOut));
  out.counter("reverb_write_errors_total",
              "Sends that failed because the peer had gone (its replies were dropped).",
              S::get(s.writeErrors));

  out.family("reverb_protocol_errors_total", "counter",
             "Bad input by kind: too_long (a line over --max-line or a frame over --max-frame; "
             "the connection closes), truncated (a connection that ended inside a request).");
  out.sample("reverb_protocol_errors_total", {{"kind", "too_long"}}, S::get(s.tooLong));
  out.sample("reverb_protocol_errors_total", {{"kind", "truncated"}}, S::get(s.truncated));

  out.gauge("reverb_job_queue_depth", "Connections waiting in the job queue for a worker.",
            static_cast<double>(server.queueDepth()));
  out.gauge("reverb_workers", "Worker threads.", static_cast<double>(server.workerCount()));
  out.gauge("reverb_draining", "1 once a drain (SIGTERM/SIGINT) has begun, else 0.",
            server.draining() ? 1.0 : 0.0);

  // Per worker, and summed for the histogram: each WorkerStats has one writer, read here.
  auto workers = server.workerStats();
  out.family("reverb_worker_busy_seconds_total", "counter",
             "Time each worker spent serving connections (parse, reverse, send).");
  std::array<uint64_t, WorkerStats::kBuckets> buckets{};
  uint64_t sumNs = 0;
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerStats& w = workers[i];
    const std::string index = std::to_string(i);
    out.sample("reverb_worker_busy_seconds_total", {{"worker", index}},
               static_cast<double>(w.busyNs.load(std::memory_order_relaxed)) / 1e9);
    for (size_t b = 0; b < buckets.size(); ++b) {
      buckets[b] += w.serviceBuckets[b].load(std::memory_order_relaxed);
    }
    sumNs += w.serviceSumNs.load(std::memory_order_relaxed);
  }
  out.family("reverb_request_service_seconds", "histogram",
             "Per-request service time, from the start of the strand run that parsed the request "
             "until its reply's last byte was handed to the kernel (one clock read per strand "
             "run, not per request).");
  // Buckets are cumulative in the format, and the count equals the +Inf bucket. The per-bucket
  // counters are read one by one while workers write, so the count is the buckets' sum, which
  // keeps the family consistent (serviceCount may already be a little ahead).
  uint64_t cumulative = 0;
  for (size_t b = 0; b < buckets.size(); ++b) {
    cumulative += buckets[b];
    std::string le = b < kServiceTimeBoundsNs.size()
                         ? fmt::format("{}", static_cast<double>(kServiceTimeBoundsNs[b]) / 1e9)
                         : std::string("+Inf");
    out.sample("reverb_request_service_seconds_bucket", {{"le", le}}, cumulative);
  }
  out.sample("reverb_request_service_seconds_sum", static_cast<double>(sumNs) / 1e9);
  out.sample("reverb_request_service_seconds_count", cumulative);

  const ServerConfig& config = server.config();
  out.gauge("reverb_backend_info",
            "The I/O backend, the workers' reply path (sends) and the protocol, as labels.", 1.0,
            {{"backend", server.backendName()},
             {"sends", server.replySendName()},
             {"framing", toString(config.protocol.framing)},
             {"unit", toString(config.protocol.unit)}});
}

void appendProcessMetrics(MetricsText& out) {
  // /proc/self/stat: after the ")" that ends the command name, field 3 (state) comes first.
  std::ifstream statFile("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(statFile)), std::istreambuf_iterator<char>());
  std::vector<std::string> fields;
  if (size_t close = stat.rfind(')'); close != std::string::npos) {
    std::istringstream words(stat.substr(close + 1));
    for (std::string word; words >> word;) fields.push_back(word);
  }
  // fields[0] is field 3 of proc(5): field N is fields[N - 3].
  auto field = [&](size_t n) -> double {
    return n - 3 < fields.size() ? std::strtod(fields[n - 3].c_str(), nullptr) : 0.0;
  };
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));

  double bootTime = 0;
  std::ifstream procStat("/proc/stat");
  for (std::string line; std::getline(procStat, line);) {
    if (line.rfind("btime ", 0) == 0) bootTime = std::strtod(line.c_str() + 6, nullptr);
  }

  out.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
  out.sample("process_cpu_seconds_total", (field(14) + field(15)) / ticks);
  out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", field(24) * page);
  out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", field(23));
  out.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch.",
            bootTime + field(22) / ticks);
  out.gauge("process_threads", "Threads in the process.", field(20));

  double fds = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ++fds;
    }
    ::closedir(dir);
    --fds;  // the directory stream's own fd
  }
  out.gauge("process_open_fds", "Open file descriptors.", fds);
  rlimit limit{};
  double maxFds = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? static_cast<double>(limit.rlim_cur) : 0;
  out.gauge("process_max_fds", "The soft limit on open file descriptors (RLIMIT_NOFILE).", maxFds);
}

}  // namespace reverb
