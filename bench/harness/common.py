"""Paths, limits and small helpers every part of the harness uses.

Where the repository is (ROOT), how long a server may take to become ready or to stop, what a
sanitizer report looks like in a log, which latency percentiles reverb-load reports, which
baselines the figures are ratios to; then logging
to stderr and the readings from /proc: the machine's description for the report, the machine's
and one process's CPU ticks, and a process's RSS and thread count.
"""

import datetime
import os
import platform
import re
import resource
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
READY_TIMEOUT = 60.0   # seconds a server may take to print its ready line (sanitizer builds are slow)
STOP_TIMEOUT = 15.0    # seconds a server may take to exit after SIGTERM
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|"
                              r"WARNING: ThreadSanitizer|runtime error:")
PERCENTILES = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("p9999", 99.99)]
# The baselines every point's headline figure and p99 are a ratio to (stats.py), in the order the
# ratios are stored (results.py checks exactly these keys). minimal_uring may be absent from a
# build; its ratios are then None.
BASELINES = ("minimal", "minimal_uring", "threaded")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def read_text(path, default=""):
    try:
        return Path(path).read_text()
    except OSError:
        return default


def machine_info():
    cpu_model = "unknown"
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"
    port_range = read_text("/proc/sys/net/ipv4/ip_local_port_range").split()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": socket.gethostname().split(".")[0],
        "cpu_model": cpu_model,
        "nproc": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "memory_mib": mem_kib // 1024,
        "git_commit": git("describe", "--always", "--dirty"),
        "loadavg_at_start": read_text("/proc/loadavg").strip(),
        "limits": {
            "somaxconn": read_text("/proc/sys/net/core/somaxconn").strip(),
            "ip_local_port_range": " ".join(port_range),
            "tcp_tw_reuse": read_text("/proc/sys/net/ipv4/tcp_tw_reuse").strip(),
            "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        },
    }


def machine_cpu_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat's cpu line."""
    fields = [int(x) for x in read_text("/proc/stat").splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def process_cpu_ticks(pid):
    """utime + stime of every thread of pid, in clock ticks; None once the process is gone."""
    text = read_text(f"/proc/{pid}/stat")
    if not text:
        return None
    rest = text.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def process_status(pid):
    """VmRSS and VmHWM in KiB and the thread count, from /proc/PID/status."""
    out = {}
    for line in read_text(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out
