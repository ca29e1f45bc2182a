#include "load/system_info.h"

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "build_info.h"

namespace reverb::load {
namespace {

std::optional<std::string> readFirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

long readLong(const char* path) {
  auto line = readFirstLine(path);
  if (!line) return -1;
  try {
    return std::stol(*line);
  } catch (...) {
    return -1;
  }
}

}  // namespace

std::string isoDateUtc() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

MachineInfo collectMachineInfo() {
  MachineInfo info;
  info.date = isoDateUtc();
  utsname u{};
  if (uname(&u) == 0) {
    info.kernel = std::string(u.sysname) + " " + u.release + " " + u.version + " " + u.machine;
  }
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) info.cpuModel = line.substr(line.find_first_not_of(" \t", colon + 1));
      break;
    }
  }
  info.nproc = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  info.gitCommit = kBuildGitCommit;
  return info;
}

KernelLimits readKernelLimits() {
  KernelLimits limits;
  limits.somaxconn = readLong("/proc/sys/net/core/somaxconn");
  if (auto range = readFirstLine("/proc/sys/net/ipv4/ip_local_port_range")) {
    std::istringstream in(*range);
    in >> limits.portLow >> limits.portHigh;
    if (!in) limits.portLow = limits.portHigh = -1;
  }
  limits.tcpTwReuse = static_cast<int>(readLong("/proc/sys/net/ipv4/tcp_tw_reuse"));
  limits.tcpTwReuseDelayMs = readLong("/proc/sys/net/ipv4/tcp_tw_reuse_delay");
  limits.tcpTimestamps = static_cast<int>(readLong("/proc/sys/net/ipv4/tcp_timestamps"));
  limits.tcpMaxTwBuckets = readLong("/proc/sys/net/ipv4/tcp_max_tw_buckets");
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    limits.rlimitNofile = static_cast<long>(rl.rlim_cur);
    limits.rlimitNofileHard = static_cast<long>(rl.rlim_max);
  }
  return limits;
}

ProcessCpu sampleProcessCpu() noexcept {
  rusage usage{};
  ProcessCpu cpu;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return cpu;
  cpu.user = static_cast<double>(usage.ru_utime.tv_sec) + usage.ru_utime.tv_usec / 1e6;
  cpu.system = static_cast<double>(usage.ru_stime.tv_sec) + usage.ru_stime.tv_usec / 1e6;
  return cpu;
}

std::optional<MachineCpu> sampleMachineCpu() {
  auto line = readFirstLine("/proc/stat");
  if (!line || line->rfind("cpu ", 0) != 0) return std::nullopt;
  std::istringstream in(line->substr(4));
  // user nice system idle iowait irq softirq steal (guest and guest_nice are inside user/nice).
  uint64_t fields[8] = {};
  for (auto& f : fields) {
    if (!(in >> f)) break;
  }
  MachineCpu cpu;
  for (int i = 0; i < 8; ++i) cpu.total += fields[i];
  cpu.busy = cpu.total - fields[3] - fields[4];
  return cpu;
}

}  // namespace reverb::load
