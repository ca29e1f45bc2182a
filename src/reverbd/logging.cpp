#include "reverbd/logging.h"

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <iterator>
#include <memory>
#include <mutex>

#include "base/mutex.h"

namespace reverb {
namespace {

// One JSON object per line. Control characters, quotes and backslashes in the message are escaped;
// other bytes pass as they are (log messages are UTF-8 or ASCII).
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    const auto since = msg.time.time_since_epoch();
    const time_t seconds = static_cast<time_t>(duration_cast<std::chrono::seconds>(since).count());
    const auto micros = duration_cast<microseconds>(since).count() % 1000000;
    tm utc{};
    gmtime_r(&seconds, &utc);
    const auto level = spdlog::level::to_string_view(msg.level);
    fmt::format_to(std::back_inserter(dest),
                   "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\",\"level\":\"{}\","
                   "\"msg\":\"",
                   utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                   utc.tm_sec, micros, std::string_view(level.data(), level.size()));
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\r':
          dest.append(std::string_view("\\r"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            fmt::format_to(std::back_inserter(dest), "\\u{:04x}", static_cast<unsigned>(c));
          } else {
            dest.push_back(c);
          }
      }
    }
    dest.append(std::string_view("\"}\n"));
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// Writes nothing; its flush() runs on the logging thread after every sink before it has flushed,
// so finishLogging() learns when stderr has taken everything queued before its flush request.
class FlushMarkerSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Thread-safe.
  uint64_t flushes() REVERB_EXCLUDES(doneMu_) {
    MutexLock lock(doneMu_);
    return flushes_;
  }
  // Thread-safe: waits until flushes() > `seen`, at most `timeout`.
  bool waitPast(uint64_t seen, std::chrono::milliseconds timeout) REVERB_EXCLUDES(doneMu_) {
    MutexLock lock(doneMu_);
    return done_.waitFor(doneMu_, timeout,
                         [&]() REVERB_REQUIRES(doneMu_) { return flushes_ > seen; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg&) override {}
  void flush_() override {
    {
      MutexLock lock(doneMu_);
      ++flushes_;
    }
    done_.notifyAll();
  }

 private:
  Mutex doneMu_;
  CondVar done_;
  uint64_t flushes_ REVERB_GUARDED_BY(doneMu_) = 0;
};

// Set by setUpLogging and cleared by finishLogging, both on main's thread; read in between by any
// thread (the metrics endpoint is stopped before finishLogging).
std::shared_ptr<spdlog::details::thread_pool> pool;
std::shared_ptr<FlushMarkerSink> marker;

}  // namespace

bool parseLogFormat(std::string_view text, LogFormat& format) noexcept {
  if (text == "text") {
    format = LogFormat::kText;
  } else if (text == "json") {
    format = LogFormat::kJson;
  } else {
    return false;
  }
  return true;
}

void setUpLogging(LogFormat format, spdlog::level::level_enum level, size_t queueSize) {
  pool = std::make_shared<spdlog::details::thread_pool>(queueSize, 1U);
  marker = std::make_shared<FlushMarkerSink>();
  auto out = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (format == LogFormat::kJson) {
    out->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    out->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  spdlog::sinks_init_list sinks{out, marker};
  auto logger = std::make_shared<spdlog::async_logger>(
      "reverbd", sinks, pool, spdlog::async_overflow_policy::overrun_oldest);
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

uint64_t droppedMessages() noexcept {
  return pool ? pool->overrun_counter() : 0;
}

bool finishLogging(std::chrono::milliseconds timeout) noexcept {
  if (!pool) return true;
  const uint64_t seen = marker->flushes();
  spdlog::default_logger()->flush();  // queued behind every line logged so far
  if (!marker->waitPast(seen, timeout)) return false;
  // Another thread (the signal thread, say) may still log while the process exits: the default
  // logger becomes one without sinks, and the asynchronous one is kept alive, never destroyed
  // under a caller (spdlog::shutdown would leave a null default logger behind).
  static std::shared_ptr<spdlog::logger> retired;
  retired = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("reverbd"));
  // The last reference to the pool: joins the logging thread, which has nothing left to write.
  // Only then may the marker go: the thread may still be inside its flush() after the wake-up.
  pool.reset();
  marker.reset();
  return true;
}

}  // namespace reverb
