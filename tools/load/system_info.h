// System facts a load figure depends on: the machine and kernel it ran on, the kernel limits that
// can bound it (listen backlog, ephemeral ports, TIME_WAIT reuse, open files), and CPU time
// samples (own process via getrusage, whole machine via /proc/stat). Threading: every function
// is thread-safe (reads files and syscalls, no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace reverb::load {

struct MachineInfo {
  std::string date;      // ISO 8601, UTC, when collected
  std::string kernel;    // "Linux 6.1.0-18-amd64 #1 SMP ... x86_64"
  std::string cpuModel;  // /proc/cpuinfo "model name"
  int nproc = 0;         // online CPUs
  std::string gitCommit;  // of the build: `git describe --always --dirty`, or "unknown"
};

struct KernelLimits {
  long somaxconn = -1;            // net.core.somaxconn
  int portLow = -1;               // net.ipv4.ip_local_port_range
  int portHigh = -1;
  int tcpTwReuse = -1;            // net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only
  long tcpTwReuseDelayMs = -1;    // net.ipv4.tcp_tw_reuse_delay (Linux 6.13+), else -1
  int tcpTimestamps = -1;         // net.ipv4.tcp_timestamps (TIME_WAIT reuse needs it)
  long tcpMaxTwBuckets = -1;      // net.ipv4.tcp_max_tw_buckets
  long rlimitNofile = -1;         // RLIMIT_NOFILE soft limit now
  long rlimitNofileHard = -1;

  int ephemeralPorts() const noexcept { return portHigh >= portLow && portLow > 0 ? portHigh - portLow + 1 : 0; }
};

MachineInfo collectMachineInfo();
KernelLimits readKernelLimits();

// CPU time of this process (all threads), seconds.
struct ProcessCpu {
  double user = 0;
  double system = 0;
};
ProcessCpu sampleProcessCpu() noexcept;

// Jiffies from /proc/stat's "cpu" line: busy = everything but idle and iowait.
struct MachineCpu {
  uint64_t busy = 0;
  uint64_t total = 0;
};
// nullopt when /proc/stat cannot be read.
std::optional<MachineCpu> sampleMachineCpu();

// Seconds since the epoch as ISO 8601 UTC ("2026-11-25T21:55:40Z").
std::string isoDateUtc();

}  // namespace reverb::load
