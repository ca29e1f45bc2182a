// LoadRun: the coordinating thread of a load test. It checks the settings, creates the workers
// (worker.h, one epoll loop per thread), starts them at a common timeline, samples progress and
// CPU while they run, and merges their figures into one LoadReport.
#include "load/load_run.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "load/worker.h"

namespace reverb::load {
namespace {

// Waits up to `timeout` for a TCP connection to `target`; the run's first sign of a wrong target.
Result<void> preflight(const SocketAddress& target, std::chrono::nanoseconds timeout) {
  auto fd = connectTo(target);
  if (!fd) return fd.error();
  pollfd p{fd->get(), POLLOUT, 0};
  int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  int r = ::poll(&p, 1, std::max(ms, 1));
  if (r == 0) return makeError(std::errc::timed_out, "connect to " + target.toString());
  if (r < 0) return errnoError("poll");
  int err = socketError(fd->get());
  if (err != 0) {
    return Error{std::error_code(err, std::system_category()), "connect to " + target.toString()};
  }
  return {};
}

}  // namespace

std::string_view toString(Mode mode) noexcept {
  return mode == Mode::kConnect ? "connect" : "requests";
}

std::string_view toString(CloseMode close) noexcept { return close == CloseMode::kRst ? "rst" : "fin"; }

std::string_view toString(ErrorCause cause) noexcept {
  switch (cause) {
    case ErrorCause::kRefused:
      return "refused";
    case ErrorCause::kReset:
      return "reset";
    case ErrorCause::kTimeout:
      return "timeout";
    case ErrorCause::kEarlyEof:
      return "early_eof";
    case ErrorCause::kNoPort:
      return "no_port";
    case ErrorCause::kOther:
      return "other";
  }
  return "?";
}

uint64_t LoadCounters::errorTotal() const noexcept {
  uint64_t sum = 0;
  for (uint64_t e : errors) sum += e;
  return sum;
}

void LoadCounters::add(const LoadCounters& o) noexcept {
  requests += o.requests;
  connections += o.connections;
  bytesSent += o.bytesSent;
  bytesReceived += o.bytesReceived;
  mismatches += o.mismatches;
  for (size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
  completedAll += o.completedAll;
  connectionsAll += o.connectionsAll;
}

void LoadReport::add(const LoadReport& later) {
  if (later.machineBusy) {
    const double total = seconds + later.seconds;
    machineBusy = machineBusy && total > 0
                      ? (*machineBusy * seconds + *later.machineBusy * later.seconds) / total
                      : *later.machineBusy;
  }
  for (IntervalFigures f : later.series) {
    f.start += seconds;
    series.push_back(f);
  }
  seconds += later.seconds;
  counters.add(later.counters);
  latency.merge(later.latency);
  latencyUncorrected.merge(later.latencyUncorrected);
  sendDelay.merge(later.sendDelay);
  connectLatency.merge(later.connectLatency);
  connectLatencyUncorrected.merge(later.connectLatencyUncorrected);
  backlogAtEnd += later.backlogAtEnd;
  cpu.user += later.cpu.user;
  cpu.system += later.cpu.system;
  interrupted = interrupted || later.interrupted;
  stalled = stalled || later.stalled;
  openLoop = openLoop || later.openLoop;
  pacedConnects = pacedConnects || later.pacedConnects;
}

double LoadReport::requestsPerSecond() const noexcept {
  return seconds > 0 ? static_cast<double>(counters.requests) / seconds : 0;
}

double LoadReport::connectionsPerSecond() const noexcept {
  return seconds > 0 ? static_cast<double>(counters.connections) / seconds : 0;
}

double LoadReport::cpuMicrosPerRequest() const noexcept {
  if (counters.requests == 0) return 0;
  return (cpu.user + cpu.system) * 1e6 / static_cast<double>(counters.requests);
}

Result<void> validate(const LoadConfig& config, Framing framing) {
  auto invalid = [](std::string why) { return makeError(std::errc::invalid_argument, std::move(why)); };
  if (config.threads < 1) return invalid("--threads must be at least 1");
  if (config.connections < 1) return invalid("--connections must be at least 1");
  if (config.pipeline < 1) return invalid("--pipeline must be at least 1");
  if (config.mode == Mode::kRequests && framing == Framing::kChunk && config.pipeline > 1) {
    return invalid(
        "--pipeline above 1 cannot be checked in chunk framing: requests sent back to back may "
        "reach the server in one read and come back as one reversal; use line or length framing");
  }
  if (config.mode == Mode::kConnect && config.rate > 0) {
    return invalid("--rate paces requests; in connect mode use --connect-rate");
  }
  if (config.mode == Mode::kRequests && config.connectRate > 0) {
    return invalid("--connect-rate only applies to --mode connect");
  }
  if (config.rate < 0 || config.connectRate < 0) return invalid("rates cannot be negative");
  if (config.sourceAddrs < 1 || config.sourceAddrs > 254) return invalid("--source-addrs must be 1 to 254");
  if (config.sourceAddrs > 1) {
    bool loopbackV4 = config.target.family() == AF_INET &&
                      (ntohl(reinterpret_cast<const sockaddr_in*>(&config.target.storage)->sin_addr.s_addr) >> 24) == 127;
    if (!loopbackV4) return invalid("--source-addrs needs an IPv4 loopback target (127.0.0.0/8)");
  }
  if (config.requests == 0 && config.duration.count() <= 0) return invalid("--duration must be positive");
  if (config.timeout.count() <= 0) return invalid("--timeout must be positive");
  if (config.warmup.count() < 0) return invalid("--warmup cannot be negative");
  if (config.seriesInterval.count() <= 0)
    return invalid("the time series interval must be positive");
  return {};
}

LoadRun::LoadRun(LoadConfig config, const MessagePool& pool)
    : config_(std::move(config)), pool_(pool), console_(std::make_unique<Console>()) {}

LoadRun::~LoadRun() = default;

Result<std::unique_ptr<LoadRun>> LoadRun::create(LoadConfig config, const MessagePool& pool) {
  if (auto ok = validate(config, pool.framing()); !ok) return ok.error();
  // Not make_unique: the constructor is private, so that every LoadRun has been through here.
  std::unique_ptr<LoadRun> run(new LoadRun(std::move(config), pool));
  const LoadConfig& cfg = run->config_;
  run->stopFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!run->stopFd_.valid()) return errnoError("eventfd");
  run->doneFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!run->doneFd_.valid()) return errnoError("eventfd");
  if (cfg.preflightConnect) {
    if (auto ok = preflight(cfg.target, cfg.timeout); !ok) return ok.error();
  }
  run->console_->diffsLeft = cfg.maxDiffs;
  run->console_->errorLinesLeft = cfg.maxErrorLines;

  const bool byCount = cfg.requests > 0;
  int threads = std::min(cfg.threads, cfg.connections);
  if (byCount) threads = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(threads), cfg.requests));
  const double totalRate = cfg.mode == Mode::kConnect ? cfg.connectRate : cfg.rate;
  run->intervals_ = std::make_unique<IntervalLog>(threads, cfg.seriesInterval.count());
  int slot = 0;
  for (int t = 0; t < threads; ++t) {
    ThreadPlan plan;
    plan.index = t;
    plan.slots = cfg.connections / threads + (t < cfg.connections % threads ? 1 : 0);
    plan.firstSlot = slot;
    slot += plan.slots;
    if (byCount) {
      plan.quota = cfg.requests / static_cast<uint64_t>(threads) +
                   (static_cast<uint64_t>(t) < cfg.requests % static_cast<uint64_t>(threads) ? 1 : 0);
    }
    if (totalRate > 0) {
      plan.rate = totalRate / threads;
      plan.phase = static_cast<Nanos>(1e9 / totalRate * t);
    }
    auto worker = Worker::create(cfg, pool, plan, run->stopFd_.get(), run->doneFd_.get(),
                                 *run->console_, *run->intervals_);
    if (!worker) return worker.error();
    run->workers_.push_back(std::move(*worker));
  }
  return run;
}

void LoadRun::stop() noexcept {
  interrupted_.store(true, std::memory_order_relaxed);
  uint64_t one = 1;
  (void)!::write(stopFd_.get(), &one, sizeof one);
}

Result<LoadReport> LoadRun::run(ProgressSink* sink) {
  if (ran_) {
    // The workers_' connections and counters are spent; a second run would measure nothing true.
    std::fputs("reverb-load: LoadRun::run() called twice\n", stderr);
    std::abort();
  }
  ran_ = true;
  const bool byCount = config_.requests > 0;
  const int threads = static_cast<int>(workers_.size());
  const int doneFd = doneFd_.get();

  Timeline tl;
  tl.byCount = byCount;
  tl.start = monotonicNow() + 1'000'000;  // a millisecond to get the threads going
  tl.measureStart = tl.start + config_.warmup.count();
  tl.measureEnd = byCount ? kNever : tl.measureStart + config_.duration.count();

  std::vector<std::thread> running;
  auto stopAndJoin = [&] {
    uint64_t one = 1;
    (void)!::write(stopFd_.get(), &one, sizeof one);
    for (auto& th : running) th.join();
  };
  // The load threads take no asynchronous signal: SIGINT and SIGTERM reach the thread that called
  // run(), whose handler may then stop this run (or a sweep move on) without racing the workers.
  sigset_t all;
  sigset_t before;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  try {
    for (auto& w : workers_) running.emplace_back([&w, &tl] { w->run(tl); });
  } catch (const std::system_error& e) {
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
    stopAndJoin();
    return Error{e.code(), "starting load threads"};
  }
  pthread_sigmask(SIG_SETMASK, &before, nullptr);

  LoadReport report;
  report.openLoop = config_.mode == Mode::kRequests && config_.rate > 0;
  report.pacedConnects = config_.mode == Mode::kConnect && config_.connectRate > 0;
  ProcessCpu cpuStart;
  std::optional<MachineCpu> machineStart;
  bool windowStarted = false;
  Nanos windowEnd = 0;
  int done = 0;
  Nanos nextProgress = tl.start + config_.progressInterval.count();
  Nanos lastProgressAt = tl.start;
  uint64_t lastCompleted = 0;
  uint64_t lastConnections = 0;
  Histogram progressLatency;
  pollfd fds[2] = {{stopFd_.get(), POLLIN, 0}, {doneFd, POLLIN, 0}};
  for (;;) {
    Nanos now = monotonicNow();
    if (!windowStarted && now >= tl.measureStart) {
      cpuStart = sampleProcessCpu();
      machineStart = sampleMachineCpu();
      windowStarted = true;
    }
    if (done == threads || interrupted_.load(std::memory_order_relaxed) || now >= tl.measureEnd) {
      windowEnd = std::min(now, tl.measureEnd);
      break;
    }
    if (sink != nullptr && now >= nextProgress) {
      LoadCounters sum;
      progressLatency.reset();
      for (auto& w : workers_) w->snapshot(sum, progressLatency);
      Progress p;
      double dt = static_cast<double>(now - lastProgressAt) / 1e9;
      p.elapsed = static_cast<double>(now - tl.start) / 1e9;
      p.warmup = now < tl.measureStart;
      p.requestsPerSecond = dt > 0 ? static_cast<double>(sum.completedAll - lastCompleted) / dt : 0;
      p.connectionsPerSecond = dt > 0 ? static_cast<double>(sum.connectionsAll - lastConnections) / dt : 0;
      p.p99Nanos = progressLatency.valueAtPercentile(99.0);
      p.errors = sum.errorTotal();
      p.mismatches = sum.mismatches;
      sink->onProgress(p);
      lastCompleted = sum.completedAll;
      lastConnections = sum.connectionsAll;
      lastProgressAt = now;
      while (nextProgress <= now) nextProgress += config_.progressInterval.count();
    }
    Nanos wake = std::min(windowStarted ? tl.measureEnd : tl.measureStart, sink ? nextProgress : kNever);
    timespec ts = toTimespec(wake - now);
    int r = ::ppoll(fds, 2, wake == kNever ? nullptr : &ts, nullptr);
    if (r > 0 && (fds[1].revents & POLLIN)) {
      uint64_t finishedThreads = 0;
      if (::read(doneFd, &finishedThreads, sizeof finishedThreads) == sizeof finishedThreads) {
        done += static_cast<int>(finishedThreads);
      }
    }
  }
  ProcessCpu cpuEnd = sampleProcessCpu();
  std::optional<MachineCpu> machineEnd = sampleMachineCpu();
  stopAndJoin();

  for (auto& w : workers_) {
    if (w->failure) return *w->failure;
  }
  Nanos lastFinish = 0;
  for (auto& w : workers_) {
    report.counters.add(w->counters);
    report.latency.merge(w->histograms.latency);
    report.latencyUncorrected.merge(w->histograms.latencyUncorrected);
    report.sendDelay.merge(w->histograms.sendDelay);
    report.connectLatency.merge(w->histograms.connectLatency);
    report.connectLatencyUncorrected.merge(w->histograms.connectLatencyUncorrected);
    report.backlogAtEnd += w->backlogAtEnd;
    report.stalled = report.stalled || w->stalled;
    lastFinish = std::max(lastFinish, w->finishedAt);
  }
  if (byCount && done == threads) windowEnd = std::min(windowEnd, lastFinish);
  report.interrupted = interrupted_.load(std::memory_order_relaxed);
  report.seconds = windowStarted ? std::max<double>(0, static_cast<double>(windowEnd - tl.measureStart) / 1e9) : 0;
  report.series = intervals_->finish(report.seconds);
  if (windowStarted) {
    report.cpu.user = cpuEnd.user - cpuStart.user;
    report.cpu.system = cpuEnd.system - cpuStart.system;
    if (machineStart && machineEnd && machineEnd->total > machineStart->total) {
      report.machineBusy = static_cast<double>(machineEnd->busy - machineStart->busy) /
                           static_cast<double>(machineEnd->total - machineStart->total);
    }
  }
  if (console_->errorsElided.load()) {
    std::fprintf(stderr, "reverb-load: further errors were counted but not described (--max-errors)\n");
  }
  return report;
}

}  // namespace reverb::load
