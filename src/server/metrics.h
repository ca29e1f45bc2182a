// Metrics in the Prometheus text exposition format (version 0.0.4), for reverbd's /metrics.
//
// MetricsText writes families: one "# HELP" and one "# TYPE" line, then the samples, with label
// values escaped as the format says. appendServerMetrics() reads a running Server (its ServerStats,
// the workers' WorkerStats, the queue depth) and appendProcessMetrics() reads /proc/self: both run
// on the scraping thread, never on the reactor's or a worker's, and take no lock the request path
// takes. Counters are summed over threads at scrape time, so a scrape is a consistent sum of
// monotonic counters, not an atomic snapshot.
//
// Ownership: MetricsText owns its text. Threading: any one thread at a time; appendServerMetrics
// may run while the server runs (every query it makes is thread-safe).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace reverb {

class Server;

class MetricsText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // Starts a family: `type` is counter, gauge, histogram or untyped.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of the current family (`name` may carry a suffix such as _bucket).
  void sample(std::string_view name, Labels labels, double value);
  void sample(std::string_view name, Labels labels, uint64_t value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  void sample(std::string_view name, uint64_t value) { sample(name, {}, value); }

  // A family with one sample, for the common case.
  void counter(std::string_view name, std::string_view help, uint64_t value, Labels labels = {});
  void gauge(std::string_view name, std::string_view help, double value, Labels labels = {});

  const std::string& text() const noexcept { return text_; }
  std::string take() noexcept { return std::move(text_); }

  // The exposition format's Content-Type.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void labels(Labels labels);

  std::string text_;
};

// The reverb_* families of one server: connections, requests, bytes, protocol errors, queue depth,
// worker busy time, the service-time histogram, and the backend as an info metric.
void appendServerMetrics(const Server& server, MetricsText& out);

// The process_* families of the calling process (the names Prometheus' client libraries use):
// CPU seconds, resident and virtual memory, open and maximum fds, start time, threads.
void appendProcessMetrics(MetricsText& out);

}  // namespace reverb
