"""One run of one server on one workload, as one record.

run_point starts the server, drives it (reverb-load, or the idle client for idle workloads),
measures it, stops it and returns a flat record: the headline figure, latency, CPU (server, load
generator, the rest of the machine), RSS, and a list of failures (a wrong reply, an error, a
server that did not start or stop cleanly, a sanitizer report). A record with no failures is a
run that counts. A knee run is one reverb-load sweep (--rate-steps) at fractions of the server's
closed-loop maximum; its record keeps each step and the highest rates that met the latency
objectives (KNEE_OBJECTIVES).
"""

import json
import resource
import time

from .common import (CLK_TCK, READY_TIMEOUT, SANITIZER_REPORT, machine_cpu_ticks,
                     process_cpu_ticks, process_status, read_text)
from .processes import (ServerProcess, idle_client, knee_command, knee_step_seconds,
                        load_command, run_load)
from .stats import knee_rate
from .workloads import KNEE_OBJECTIVES, Workload


def run_point(args, tools, server, wl, run_index, out_dir, closed_max=None):
    """closed_max: for a knee workload, the server's closed-loop requests/s from this run's
    closed-loop workload at the same connection count; None to measure it here first."""
    tag = f"{wl.name}.{server.name}.run{run_index + 1}"
    raw = out_dir / "raw"
    argv = [str(server.binary), "--listen", "127.0.0.1:0", "--framing", wl.framing, *server.extra]
    rec = {"server": server.name, "workload": wl.name, "run": run_index + 1,
           "server_command": " ".join(argv), "failures": []}
    srv = ServerProcess(argv, raw / f"{tag}.server.log", args.nice)
    address = srv.wait_ready(READY_TIMEOUT)
    if address is None:
        rc, _ = srv.stop()
        rec["failures"].append(f"{server.name} printed no ready line (exit status {rc}); "
                               f"see raw/{tag}.server.log")
        return rec
    rec["ready_line"] = srv.ready_line

    def sample():
        return process_cpu_ticks(srv.pid), machine_cpu_ticks(), time.monotonic()

    if wl.kind == "idle":
        rss_before = process_status(srv.pid)
        first = sample()
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        message = b"idle connection!!"[: wl.size].ljust(wl.size, b"!")
        sockets, mismatches, errors = idle_client(address, wl.connections, message,
                                                  batch=250, timeout=args.idle_timeout)
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        # The figure: what the open, idle connections cost the server, once it is quiet.
        rss_after = process_status(srv.pid)
        last = sample()
        for s in sockets:
            s.close()
        load_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
        rec.update({
            "connections_open": len(sockets), "mismatches": mismatches, "errors": errors,
            "rss_before_kib": rss_before.get("VmRSS"), "rss_after_kib": rss_after.get("VmRSS"),
            "threads_after": rss_after.get("Threads"),
            "load_cpu_cores": load_cpu / (last[2] - first[2]),
        })
        if sockets and "VmRSS" in rss_after and "VmRSS" in rss_before:
            rec["rss_per_connection"] = \
                (rss_after["VmRSS"] - rss_before["VmRSS"]) * 1024 / len(sockets)
        if len(sockets) != wl.connections:
            rec["failures"].append(f"{tag}: only {len(sockets)} of {wl.connections} idle "
                                   f"connections got their reply")
    elif wl.kind == "knee":
        first = last = None
        knee = run_knee(args, tools, wl, address, tag, raw, closed_max, sample)
        rec["failures"] += knee.pop("failures")
        samples = knee.pop("samples")
        rec.update(knee)
        if len(samples) >= 2:
            first, last = samples[0], samples[-1]
    else:
        json_path = raw / f"{tag}.load.json"
        cmd = load_command(tools["reverb-load"], address, wl, args.duration, args.warmup,
                           json_path, args.quick)
        rec["load_command"] = " ".join(cmd)
        status, load_cpu, wall, samples = run_load(
            cmd, raw / f"{tag}.load.log", deadline=args.duration + args.warmup + 120,
            sample=sample, window=(args.warmup, args.warmup + args.duration), nice=args.nice)
        rss_after = process_status(srv.pid)
        rec.update({"load_exit_status": status, "rss_after_kib": rss_after.get("VmRSS"),
                    "threads_after": rss_after.get("Threads"), "load_wall_seconds": wall})
        samples = sorted(samples, key=lambda x: x[2])
        first, last = (samples[0], samples[-1]) if len(samples) >= 2 else (None, None)
        try:
            report = json.loads(json_path.read_text())
        except (OSError, ValueError) as e:
            report = None
            rec["failures"].append(f"{tag}: reverb-load wrote no readable JSON ({e}); "
                                   f"see raw/{tag}.load.log")
        if report is not None:
            rec.update(extract_load_figures(report, wl))
            absent = [k for k in ("mismatches", "errors", wl.metric) if rec.get(k) is None]
            if absent:
                rec["failures"].append(f"{tag}: reverb-load's JSON lacks {', '.join(absent)}")
        if status != 0:
            rec["failures"].append(f"{tag}: reverb-load exited with status {status}; "
                                   f"see raw/{tag}.load.log")

    rc, clean = srv.stop()
    rec["server_exit_status"] = rc
    if not clean:
        rec["failures"].append(f"{tag}: {server.name} did not stop cleanly on SIGTERM "
                               f"(exit status {rc}); see raw/{tag}.server.log")
    for log_name in (f"{tag}.server.log", f"{tag}.load.log"):
        if SANITIZER_REPORT.search(read_text(raw / log_name)):
            rec["failures"].append(f"{tag}: sanitizer report in raw/{log_name}")
    if first and last and first[0] is not None and last[0] is not None and last[2] > first[2]:
        span = last[2] - first[2]
        rec["server_cpu_cores"] = (last[0] - first[0]) / CLK_TCK / span
        rec["machine_busy_cores"] = (last[1][0] - first[1][0]) / CLK_TCK / span
        if rec.get("load_cpu_cores") is not None:
            rec["other_cpu_cores"] = max(0.0, rec["machine_busy_cores"] -
                                         rec["server_cpu_cores"] - rec["load_cpu_cores"])
    if rec.get("mismatches"):
        rec["failures"].append(f"{tag}: {rec['mismatches']} wrong replies")
    if rec.get("errors"):
        rec["failures"].append(f"{tag}: {rec['errors']} connection errors")
    cores = rec.get("server_cpu_cores")
    if cores is not None and rec.get("requests_per_second") and wl.kind in ("closed", "bulk"):
        rec["server_cpu_us_per_request"] = cores * 1e6 / rec["requests_per_second"]
    if cores is not None and rec.get("connections_per_second") and wl.kind == "churn":
        rec["server_cpu_us_per_connection"] = cores * 1e6 / rec["connections_per_second"]
    return rec


def run_knee(args, tools, wl, address, tag, raw, closed_max, sample):
    """The knee sweep against a running server: a closed-loop probe first when closed_max is None,
    then reverb-load --rate-steps at wl.fractions of it. Returns the record's fields (with
    "samples", the server CPU samples over the sweep, and "failures")."""
    out = {"failures": [], "samples": [], "closed_max_from": "closed-loop workload"}
    step, warmup = knee_step_seconds(args)
    if closed_max is None:
        out["closed_max_from"] = "probe"
        probe = Workload(f"{wl.name}-probe", "closed", wl.connections, wl.framing, wl.size,
                         "requests_per_second", "req/s")
        json_path = raw / f"{tag}.probe.json"
        cmd = load_command(tools["reverb-load"], address, probe, step, warmup, json_path,
                           args.quick)
        status, _, _, _ = run_load(cmd, raw / f"{tag}.probe.log", deadline=step + warmup + 120,
                                   sample=lambda: None, window=(), nice=args.nice)
        try:
            closed_max = json.loads(json_path.read_text()).get("requests_per_second")
        except (OSError, ValueError):
            closed_max = None
        if status != 0:
            out["failures"].append(f"{tag}: the closed-loop probe exited with status {status}; "
                                   f"see raw/{tag}.probe.log")
    out["closed_max"] = closed_max
    if not closed_max:
        out["failures"].append(f"{tag}: no closed-loop maximum to take fractions of")
        return out
    rates = [max(1.0, float(f"{f * closed_max:.3g}")) for f in wl.fractions]
    json_path = raw / f"{tag}.load.json"
    cmd = knee_command(tools["reverb-load"], address, wl, rates, step, warmup, json_path)
    out["load_command"] = " ".join(cmd)
    total = len(rates) * (step + warmup)
    status, _, wall, samples = run_load(cmd, raw / f"{tag}.load.log", deadline=total + 120,
                                        sample=sample, window=(0.0, total), nice=args.nice)
    out.update({"load_exit_status": status, "load_wall_seconds": wall,
                "samples": sorted(samples, key=lambda x: x[2])})
    if status != 0:
        out["failures"].append(f"{tag}: reverb-load exited with status {status}; "
                               f"see raw/{tag}.load.log")
    try:
        report = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        out["failures"].append(f"{tag}: reverb-load wrote no readable JSON ({e}); "
                               f"see raw/{tag}.load.log")
        return out
    steps = []
    for fraction, s in zip(wl.fractions, report.get("steps") or []):
        latency = s.get("latency_us") or {}
        steps.append({"fraction": fraction, "rate_asked": s.get("rate_asked"),
                      "requests_per_second": s.get("requests_per_second"),
                      "latency_us": {k: latency.get(k) for k in ("p50", "p90", "p99", "p999",
                                                                 "max")},
                      "errors": s.get("errors"), "mismatches": s.get("mismatches"),
                      "backlog_at_end": s.get("backlog_at_end")})
    if len(steps) != len(rates):
        out["failures"].append(f"{tag}: reverb-load reported {len(steps)} of {len(rates)} steps")
    out.update({"knee": steps, "mismatches": report.get("mismatches"),
                "errors": report.get("errors"),
                "load_cpu_cores": (report.get("cpu") or {}).get("cores_used")})
    for key, limit, field, _ in KNEE_OBJECTIVES:
        out[field] = knee_rate(steps, key, limit)
    return out


def extract_load_figures(report, wl):
    """The figures this harness uses from reverb-load's --json file."""
    cpu = report.get("cpu") or {}
    out = {
        "requests_per_second": report.get("requests_per_second"),
        "connections_per_second": report.get("connections_per_second"),
        "mb_per_second": report.get("mb_per_second_received"),
        "mismatches": report.get("mismatches"),
        "errors": report.get("errors"),
        "errors_by_cause": report.get("errors_by_cause"),
        "latency_us": report.get("latency_us"),
        "connect_latency_us": report.get("connect_latency_us"),
        # reverb-load's own CPU over the measured window, and the whole machine's.
        "load_cpu_cores": cpu.get("cores_used"),
        "load_cpu_us_per_request": cpu.get("us_per_request"),
    }
    return out
