// reverbd's logging: an asynchronous spdlog logger that never blocks the thread that logs.
//
// Every log call (from the reactor, a worker, the signal thread) formats its line and pushes it on
// a bounded queue; one logging thread writes the queue to stderr. When stderr stalls (a pipe nobody
// reads, a frozen terminal), only the logging thread blocks: once the queue is full, each new line
// pushes out the oldest one (spdlog's overrun_oldest policy), which is counted
// (droppedMessages(), exported as reverb_log_messages_dropped_total). A push takes the queue's
// mutex briefly and never waits for the writer.
//
// Text lines are "2025-01-01T12:00:00.123 info message"; JSON lines are one object per line,
// {"time":"2025-01-01T12:00:00.123456Z","level":"info","msg":"..."}, with the time in UTC.
//
// Threading: setUpLogging() and finishLogging() from main only, once each; the rest thread-safe.
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace reverb {

enum class LogFormat { kText, kJson };

// Parses "text" or "json".
bool parseLogFormat(std::string_view text, LogFormat& format) noexcept;

// Makes the asynchronous logger the default one: `queueSize` lines at most wait for stderr.
void setUpLogging(LogFormat format, spdlog::level::level_enum level, size_t queueSize);

// Lines pushed out of the full queue (never written) so far. Thread-safe.
uint64_t droppedMessages() noexcept;

// Writes what the queue holds, waiting at most `timeout` for stderr to take it, then stops the
// logging thread; lines logged after it are dropped. Returns false if stderr did not take them
// (the logging thread is blocked in a write): the caller must then leave with _Exit, since
// stopping that thread would wait for the write forever.
bool finishLogging(std::chrono::milliseconds timeout) noexcept;

}  // namespace reverb
