"""What is measured: the servers (rows) and the workloads (tables), full and --quick.

A Server is a binary and its arguments besides --listen and --framing; a Workload says what
reverb-load (or the idle client) does and which figure of a run record is its headline. The
`knee` workload is an open-loop sweep at fractions of each server's closed-loop maximum at the
same connection count (knee_base names that closed-loop workload), so it comes after it. The
servers are reverbd on each backend that `reverbd --list-backends` says the build has, then the
baselines (minimal_uring only when the build has it: it needs liburing); the workload lists are
fixed. Together they decide the matrix; cli.py narrows it with
--servers and --workloads.
"""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# One line of `reverbd --list-backends` for a backend this build can run; the others read
# `NAME: unavailable (REASON)`.
AVAILABLE_BACKEND = re.compile(r"^(\w+): available$")


@dataclass
class Server:
    name: str          # row label: "reverbd-w1", "threaded", "minimal", "minimal_uring"
    binary: Path
    extra: list        # arguments besides --listen and --framing
    family: str        # "reverbd" or "baseline"


@dataclass
class Workload:
    name: str          # "closed-50"
    kind: str          # "closed", "churn", "bulk" or "idle"
    connections: int   # connections, churn slots or idle connections
    framing: str
    size: int          # payload bytes per message
    metric: str        # the headline figure's key in a run record
    unit: str          # how the headline figure reads
    higher_is_better: bool = True
    title: str = ""
    fractions: tuple = ()  # knee: the steps' rates, as fractions of the closed-loop maximum


# The latency objectives the knee table reports: (latency_us key, limit in µs, record key, label).
KNEE_OBJECTIVES = (("p99", 1000.0, "rate_at_p99_1ms", "p99 ≤ 1 ms"),
                   ("p999", 10000.0, "rate_at_p999_10ms", "p99.9 ≤ 10 ms"))


def knee(fractions):
    return Workload("knee", "knee", 50, "chunk", 17, "rate_at_p99_1ms", "req/s",
                    title="open loop at fractions of closed-50's maximum, 17 B, 50 connections: "
                          "latency against load",
                    fractions=tuple(fractions))


def knee_base(workloads, wl):
    """The closed-loop workload whose maximum sets a knee workload's rates: the one with the same
    connection count and framing, or None when the matrix has none (the knee then probes)."""
    return next((w for w in workloads if w.kind == "closed" and w.connections == wl.connections
                 and w.framing == wl.framing), None)


def full_workloads():
    return [
        Workload("closed-1", "closed", 1, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 1 connection"),
        Workload("closed-50", "closed", 50, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 50 connections"),
        Workload("closed-1000", "closed", 1000, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 1000 connections"),
        Workload("churn-50", "churn", 50, "chunk", 17, "connections_per_second", "conn/s",
                 title="connection churn, 50 slots (connect, 17 B request, reply, close)"),
        Workload("bulk-64k-50", "bulk", 50, "length", 65536, "mb_per_second", "MB/s",
                 title="64 KiB length-framed messages, 50 connections (MB/s of replies received)"),
        Workload("idle-10000", "idle", 10000, "chunk", 17, "rss_per_connection", "B/conn",
                 higher_is_better=False,
                 title="10,000 idle connections (server RSS per connection, after one exchange each)"),
        knee((0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2)),
    ]


def quick_workloads():
    return [
        Workload("closed-1", "closed", 1, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 1 connection"),
        Workload("closed-50", "closed", 50, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 50 connections"),
        Workload("churn-8", "churn", 8, "chunk", 17, "connections_per_second", "conn/s",
                 title="connection churn, 8 slots"),
        Workload("bulk-64k-4", "bulk", 4, "length", 65536, "mb_per_second", "MB/s",
                 title="64 KiB length-framed messages, 4 connections"),
        Workload("idle-200", "idle", 200, "chunk", 17, "rss_per_connection", "B/conn",
                 higher_is_better=False, title="200 idle connections"),
        knee((0.25, 0.5)),
    ]


class BackendsError(Exception):
    """reverbd could not say which backends it has; the message says what went wrong."""


def parse_list_backends(text):
    """The backends `reverbd --list-backends` output names as available, in its order: NAME from
    each line that is exactly `NAME: available`. `NAME: unavailable (REASON)` lines, and anything
    else, name no backend to run."""
    return [m.group(1) for m in map(AVAILABLE_BACKEND.match, text.splitlines()) if m]


def list_backends(reverbd):
    """Runs `reverbd --list-backends`; returns the available backends' names. Raises BackendsError
    when reverbd cannot run, exits non-zero (a reverbd without the flag) or lists none available:
    the harness never guesses the backends."""
    command = f"{reverbd} --list-backends"
    try:
        r = subprocess.run([str(reverbd), "--list-backends"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendsError(f"reverbd --list-backends failed: {e}") from e
    if r.returncode != 0:
        said = " ".join(r.stderr.split())
        raise BackendsError(f"reverbd --list-backends failed: `{command}` exited with status "
                            f"{r.returncode}" + (f" ({said})" if said else "") +
                            "; the harness needs a reverbd that has --list-backends")
    backends = parse_list_backends(r.stdout)
    if not backends:
        said = "; ".join(line.strip() for line in r.stdout.splitlines() if line.strip())
        raise BackendsError(f"reverbd --list-backends failed: `{command}` lists no available "
                            f"backend ({said or 'no output'})")
    return backends


def discover_servers(build_dir):
    """reverbd with 1 and 2 workers on each backend it was built with, then the baselines:
    threaded, minimal, and minimal_uring when its binary exists (bench/meson.build builds it only
    when liburing is found, so its absence is a build without liburing, not an error; the caller
    says so). reverbd reverses bytes here (--unit byte), as the baselines and reverb-load do.
    Raises BackendsError when reverbd cannot list its backends."""
    reverbd = build_dir / "src" / "reverbd" / "reverbd"
    servers = []
    for backend in list_backends(reverbd):
        for workers in (1, 2):
            name = f"reverbd-w{workers}" + (f"-{backend}" if backend != "epoll" else "")
            extra = ["--workers", str(workers), "--unit", "byte", "--backend", backend]
            servers.append(Server(name, reverbd, extra, "reverbd"))
    servers.append(Server("threaded", build_dir / "bench" / "threaded", [], "baseline"))
    servers.append(Server("minimal", build_dir / "bench" / "minimal", [], "baseline"))
    minimal_uring = build_dir / "bench" / "minimal_uring"
    if minimal_uring.exists():
        servers.append(Server("minimal_uring", minimal_uring, [], "baseline"))
    return servers
