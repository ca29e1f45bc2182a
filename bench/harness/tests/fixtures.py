"""Small fixed inputs shared by the tests: servers, workloads, run records and a machine."""

from pathlib import Path

from harness.workloads import Server, Workload, knee

CLOSED = Workload("closed-50", "closed", 50, "chunk", 17, "requests_per_second", "req/s",
                  title="closed loop, 17 B, 50 connections")
IDLE = Workload("idle-200", "idle", 200, "chunk", 17, "rss_per_connection", "B/conn",
                higher_is_better=False, title="200 idle connections")
KNEE = knee((0.5, 1.0, 1.2))


def servers(*names):
    """reverbd-* names become reverbd rows, the rest baselines, as discover_servers makes them."""
    out = []
    for name in names:
        if name.startswith("reverbd"):
            out.append(Server(name, Path("/build/src/reverbd/reverbd"),
                              ["--workers", "1", "--unit", "byte"], "reverbd"))
        else:
            out.append(Server(name, Path(f"/build/bench/{name}"), [], "baseline"))
    return out


def closed_run(server, run, rps, p99=100.0, cpu=0.5, **extra):
    """A run record as run_point returns it for a closed-loop workload, with no failures."""
    rec = {"server": server, "workload": CLOSED.name, "run": run, "failures": [],
           "requests_per_second": rps, "mismatches": 0, "errors": 0,
           "latency_us": {"p50": p99 / 2, "p90": p99 * 0.8, "p99": p99, "p999": p99 * 2,
                          "p9999": p99 * 3, "max": p99 * 4},
           "server_cpu_cores": cpu, "load_cpu_cores": 0.25, "other_cpu_cores": 0.125,
           "server_cpu_us_per_request": cpu * 1e6 / rps if rps else None,
           "rss_after_kib": 2048, "threads_after": 3}
    rec.update(extra)
    return rec


def knee_run(server, run, closed_max, steps, mismatches=0):
    """A knee run record as run_point returns it: steps are (achieved req/s, p99 µs, p99.9 µs) at
    KNEE's fractions of closed_max; the objective rates as runs.run_knee computes them."""
    from harness.stats import knee_rate
    from harness.workloads import KNEE_OBJECTIVES
    knee_steps = [{"fraction": f, "rate_asked": f * closed_max, "requests_per_second": rps,
                   "latency_us": {"p50": p99 / 2, "p90": p99 * 0.8, "p99": p99, "p999": p999,
                                  "max": p999 * 2},
                   "errors": 0, "mismatches": 0, "backlog_at_end": 0}
                  for f, (rps, p99, p999) in zip(KNEE.fractions, steps)]
    rec = {"server": server, "workload": KNEE.name, "run": run, "failures": [],
           "closed_max": closed_max, "closed_max_from": "closed-loop workload", "knee": knee_steps,
           "mismatches": mismatches, "errors": 0, "load_cpu_cores": 0.5}
    for key, limit, field, _ in KNEE_OBJECTIVES:
        rec[field] = knee_rate(knee_steps, key, limit)
    return rec


def idle_run(server, run, rss_per_connection):
    return {"server": server, "workload": IDLE.name, "run": run, "failures": [],
            "connections_open": 200, "mismatches": 0, "errors": 0,
            "rss_per_connection": rss_per_connection, "rss_after_kib": 4096,
            "threads_after": 2, "server_cpu_cores": 0.01}


META = {
    "date": "2026-11-29T19:00:00Z", "host": "testhost", "cpu_model": "Test CPU 9000",
    "nproc": 2, "kernel": "Linux 6.1.0", "memory_mib": 3900, "git_commit": "abc1234",
    "loadavg_at_start": "0.10 0.20 0.30 1/100 4242",
    "limits": {"somaxconn": "4096", "ip_local_port_range": "32768 60999", "tcp_tw_reuse": "2",
               "rlimit_nofile": 1048576},
    "command": "scripts/bench --quick", "quick": True, "runs": 3, "duration": 0.5, "warmup": 0.2,
    "nice": 0, "build_dir": "build", "build_type": "release",
    "ready_lines": {}, "failures": [], "elapsed_seconds": 12.5,
}
