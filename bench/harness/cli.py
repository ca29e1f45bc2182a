#!/usr/bin/env python3
"""The end-to-end benchmark behind scripts/bench: reverbd beside the baseline servers.

For every workload, run after run, each server in turn is started alone on 127.0.0.1 port 0 (its
ready line names the port), driven by reverb-load (or, for idle connections, by the small client
below), measured (its CPU from /proc/PID/stat, the load generator's from wait4, the rest of the
machine's from /proc/stat) and stopped by PID. Every point is the median of the runs with their
min and max, beside the same figure for `minimal` and `threaded`. Writes results.json, report.md,
gnuplot SVG plots and the raw per-run files into one folder.

Exit status: 0 when every run completed with every reply right (no mismatch, no error, every server
started and stopped cleanly) and every output file was written; 1 otherwise, saying why. Speed
never decides it. Python 3 standard library only.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
READY_TIMEOUT = 60.0   # seconds a server may take to print its ready line (sanitizer builds are slow)
STOP_TIMEOUT = 15.0    # seconds a server may take to exit after SIGTERM
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|"
                              r"WARNING: ThreadSanitizer|runtime error:")
PERCENTILES = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("p9999", 99.99)]


# ---------------------------------------------------------------------------------------------
# What is measured

@dataclass
class Server:
    name: str          # row label: "reverbd-w1", "threaded", "minimal"
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
    ]


# ---------------------------------------------------------------------------------------------
# Small helpers

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


def median_min_max(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# ---------------------------------------------------------------------------------------------
# A server process

class ServerProcess:
    """One server started on 127.0.0.1 port 0; ready once it printed `listening on ADDR`."""

    def __init__(self, argv, log_path, nice=0):
        self.argv = argv
        self.log_file = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=niceness(nice))
        self.ready_line = None
        self.address = None
        self._ready = threading.Event()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self):
        # Reads every stderr line into the log; the first `listening on` line makes it ready.
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.log_file.write(line)
            self.log_file.flush()
            if self.address is None:
                m = re.search(r"listening on (\S+)", line)
                if m:
                    self.ready_line = line.strip()
                    self.address = m.group(1)
                    self._ready.set()
        self._ready.set()  # stderr closed: the process ended (or will) without being ready

    def wait_ready(self, timeout):
        self._ready.wait(timeout)
        return self.address

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit; returns (exit status, clean?)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._drain.join(5)
                self.log_file.close()
                return self.proc.returncode, False
        self._drain.join(5)
        self.log_file.close()
        rc = self.proc.returncode
        return rc, rc in (0, -signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# The load: reverb-load, or the idle-connection client

def niceness(nice):
    """A preexec_fn that sets the child's nice value (None when there is nothing to change)."""
    if not nice:
        return None
    return lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)


def seconds_arg(value):
    return f"{value:g}s"


def load_command(reverb_load, address, wl, duration, warmup, json_path, quick):
    cmd = [str(reverb_load), "--target", address, "--threads", "1",
           "--connections", str(wl.connections), "--framing", wl.framing,
           "--size", str(wl.size), "--payload", "ascii", "--unit", "byte",
           "--duration", seconds_arg(duration), "--warmup", seconds_arg(warmup),
           "--json", str(json_path)]
    if wl.kind == "churn":
        cmd += ["--mode", "connect", "--source-addrs", "16"]
    if wl.kind == "bulk":
        # Few distinct large messages: the pool is built (and its replies computed) at start-up,
        # which is slow in sanitizer builds, and 64 is plenty to vary what the server sees.
        cmd += ["--distinct", "8" if quick else "64"]
    return cmd


def run_load(cmd, log_path, deadline, sample, window, nice=0):
    """Runs reverb-load to its end. sample() is called when the measured window opens and when
    it closes (window = (start, end) in seconds after launch), so the server's CPU is taken over
    the same window as reverb-load's figures. Returns (exit status, CPU seconds reverb-load used
    in all, wall seconds, [window samples])."""
    samples = []
    with open(log_path, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=niceness(nice))
        timers = [threading.Timer(deadline, proc.kill)]
        timers += [threading.Timer(t, lambda: samples.append(sample())) for t in window]
        for t in timers:
            t.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            for t in timers:
                t.cancel()
        if len(samples) == 1:
            # The window's end and reverb-load's exit coincide and the timer lost the race: the
            # server has been idle since the load stopped, so its CPU time now is the end figure.
            cpu, machine, now = sample()
            samples.append((cpu, machine, min(now, start + window[1])))
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage.ru_utime + usage.ru_stime, time.monotonic() - start, samples


def idle_client(address, count, message, batch, timeout):
    """Opens `count` connections, sends `message` on each and checks the reply (chunk framing),
    batch by batch so no listen queue overflows; returns (sockets, mismatches, errors).
    The caller keeps the sockets open while it measures, then closes them."""
    host, port = address.rsplit(":", 1)
    expected = message[::-1]
    sockets, mismatches, errors = [], 0, 0
    sel = selectors.DefaultSelector()
    for first in range(0, count, batch):
        pending = {}
        for _ in range(min(batch, count - first)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            if s.connect_ex((host, int(port))) not in (0, 115):  # EINPROGRESS
                errors += 1
                s.close()
                continue
            pending[s] = b""
            sel.register(s, selectors.EVENT_WRITE)
        end = time.monotonic() + timeout
        while pending and time.monotonic() < end:
            for key, events in sel.select(max(0.0, end - time.monotonic())):
                s = key.fileobj
                if events & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or \
                            s.send(message) != len(message):
                        errors += 1
                        sel.unregister(s)
                        del pending[s]
                        s.close()
                        continue
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    errors += 1
                    sel.unregister(s)
                    del pending[s]
                    s.close()
                    continue
                pending[s] += data
                got = pending[s]
                if len(got) >= len(expected) or not expected.startswith(got):
                    if got != expected:
                        mismatches += 1
                    sel.unregister(s)
                    del pending[s]
                    sockets.append(s)
        for s in pending:  # no complete reply in time
            errors += 1
            sel.unregister(s)
            s.close()
    sel.close()
    return sockets, mismatches, errors


# ---------------------------------------------------------------------------------------------
# One run of one server on one workload

def run_point(args, tools, server, wl, run_index, out_dir):
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


# ---------------------------------------------------------------------------------------------
# Summaries, goals, report

def summarise(records, servers, workloads):
    points = []
    for wl in workloads:
        by_server = {}
        for server in servers:
            runs = [r for r in records if r["workload"] == wl.name and r["server"] == server.name]
            point = {"workload": wl.name, "server": server.name, "runs": len(runs)}
            point[wl.metric] = median_min_max([r.get(wl.metric) for r in runs])
            for key in ("server_cpu_cores", "load_cpu_cores", "other_cpu_cores",
                        "server_cpu_us_per_request", "server_cpu_us_per_connection",
                        "rss_after_kib", "threads_after"):
                point[key] = median_min_max([r.get(key) for r in runs])
            lat = [r.get("latency_us") or {} for r in runs]
            point["latency_us"] = {k: (statistics.median([l[k] for l in lat if l.get(k) is not None])
                                       if any(l.get(k) is not None for l in lat) else None)
                                   for k, _ in PERCENTILES + [("max", 0)]}
            point["mismatches"] = sum(r.get("mismatches") or 0 for r in runs)
            point["errors"] = sum(r.get("errors") or 0 for r in runs)
            by_server[server.name] = point
            points.append(point)
        for point in by_server.values():
            mine = point[wl.metric]
            point["ratio"] = {}
            for base in ("minimal", "threaded"):
                other = by_server.get(base, {}).get(wl.metric)
                point["ratio"][base] = (mine["median"] / other["median"]
                                        if mine and other and other["median"] else None)
            p99 = point["latency_us"].get("p99")
            point["p99_ratio"] = {}
            for base in ("minimal", "threaded"):
                other = by_server.get(base, {}).get("latency_us", {}).get("p99")
                point["p99_ratio"][base] = p99 / other if p99 and other else None
    return points


def find_point(points, workload, server):
    for p in points:
        if p["workload"] == workload and p["server"] == server:
            return p
    return None


def goals(points, servers, workloads):
    """The issue's goals, each reverbd variant against minimal; reported, never enforced."""
    names = {w.name for w in workloads}
    closed = [w.name for w in workloads if w.kind == "closed" and w.connections > 1]
    churn = [w.name for w in workloads if w.kind == "churn"]
    idle = [w.name for w in workloads if w.kind == "idle"]
    out = []
    for server in servers:
        if server.family != "reverbd":
            continue
        for wname in closed + churn:
            p = find_point(points, wname, server.name)
            r = p and p["ratio"]["minimal"]
            out.append({"server": server.name, "goal": f"{wname}: at least 1.0x minimal",
                        "measured": r, "met": r is not None and r >= 1.0, "unit": "x"})
        if "closed-50" in names:
            p = find_point(points, "closed-50", server.name)
            r = p and p["p99_ratio"]["minimal"]
            out.append({"server": server.name, "goal": "closed-50: p99 at most 1.5x minimal's",
                        "measured": r, "met": r is not None and r <= 1.5, "unit": "x"})
        for wname in idle:
            p = find_point(points, wname, server.name)
            v = p and p["rss_per_connection"] and p["rss_per_connection"]["median"]
            out.append({"server": server.name, "goal": f"{wname}: at most 4096 B RSS per connection",
                        "measured": v, "met": v is not None and v <= 4096, "unit": "B"})
    return out


def fmt(v, digits=3):
    if v is None:
        return "—"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def fmt_range(mmm, digits=3):
    if not mmm:
        return "—"
    return f"{fmt(mmm['median'], digits)} [{fmt(mmm['min'], digits)} – {fmt(mmm['max'], digits)}]"


def write_report(out_dir, meta, servers, workloads, points, goal_rows, micro, plots):
    L = []
    L.append(f"# reverb benchmark: {meta['date']} on {meta['host']}")
    L.append("")
    L.append(f"- Machine: {meta['cpu_model']}, {meta['nproc']} CPUs, {meta['memory_mib']} MiB, "
             f"{meta['kernel']}")
    L.append(f"- Commit: `{meta['git_commit']}`; build: `{meta['build_dir']}` "
             f"({meta['build_type']})")
    L.append(f"- Command: `{meta['command']}`")
    L.append(f"- Each point: median [min – max] of {meta['runs']} runs of {meta['duration']:g} s "
             f"after {meta['warmup']:g} s warm-up; servers run one at a time, restarted for every "
             f"run; reverb-load uses 1 thread; nothing is pinned to a CPU; servers and "
             f"reverb-load ran at nice {meta['nice']}.")
    lim = meta["limits"]
    L.append(f"- Limits: somaxconn {lim['somaxconn']}, ports {lim['ip_local_port_range']}, "
             f"tcp_tw_reuse {lim['tcp_tw_reuse']}, RLIMIT_NOFILE {lim['rlimit_nofile']}; "
             f"load average at start {meta['loadavg_at_start']}")
    L.append("- CPU columns are cores busy over the run (1.0 = one core all the time): the "
             "server's, the load generator's, and everything else on the machine (noise).")
    others = [p["other_cpu_cores"]["median"] for p in points if p.get("other_cpu_cores")]
    if others:
        noise = statistics.median(others)
        L.append(f"- Other CPU (processes outside this benchmark), median over all points: "
                 f"{noise:.2f} cores" + (" — **a noisy machine: other work took CPU time from "
                                        "the servers, so treat the figures as rough**"
                                        if noise > 0.2 else ""))
    L.append("")
    L.append("Servers:")
    L.append("")
    for s in servers:
        # One ready line per framing the server ran in (chunk, and length for 64 KiB messages).
        by_framing = {}
        for r in filter(None, meta.get("ready_lines", {}).get(s.name, [])):
            m = re.search(r"framing=(\w+)", r)
            by_framing.setdefault(m.group(1) if m else "", r)
        ready = list(by_framing.values())
        L.append(f"- `{s.name}`: `{s.binary.name} {' '.join(s.extra)}`"
                 + (" — ready lines: " + ", ".join(f"`{r}`" for r in ready) if ready else ""))
    L.append("")
    if goal_rows:
        L.append("## Goals")
        L.append("")
        L.append("| server | goal | measured | met |")
        L.append("| --- | --- | --- | --- |")
        for g in goal_rows:
            unit = "x" if g["unit"] == "x" else " B"
            L.append(f"| {g['server']} | {g['goal']} | {fmt(g['measured'])}{unit if g['measured'] is not None else ''} "
                     f"| {'yes' if g['met'] else '**no**'} |")
        L.append("")
    for wl in workloads:
        L.append(f"## {wl.name}: {wl.title}")
        L.append("")
        if wl.kind == "idle":
            L.append("| server | RSS per connection (B) | RSS after (KiB) | threads | server CPU | "
                     "x minimal | x threaded |")
            L.append("| --- | --- | --- | --- | --- | --- | --- |")
        else:
            cpu_col = "server CPU µs/conn" if wl.kind == "churn" else "server CPU µs/req"
            L.append(f"| server | {wl.unit} | p50 µs | p99 µs | p99.9 µs | max µs | server CPU | "
                     f"load CPU | other CPU | {cpu_col} | x minimal | x threaded | p99 x minimal |")
            L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for s in servers:
            p = find_point(points, wl.name, s.name)
            if p is None:
                continue
            c = lambda key: fmt(p[key]["median"], 2) if p.get(key) else "—"
            ratio = lambda base: fmt(p["ratio"][base], 3)
            if wl.kind == "idle":
                L.append(f"| {s.name} | {fmt_range(p[wl.metric], 4)} | {c('rss_after_kib')} | "
                         f"{c('threads_after')} | {c('server_cpu_cores')} | {ratio('minimal')} | "
                         f"{ratio('threaded')} |")
            else:
                lat = p["latency_us"]
                per = c("server_cpu_us_per_connection" if wl.kind == "churn"
                        else "server_cpu_us_per_request")
                L.append(f"| {s.name} | {fmt_range(p[wl.metric])} | {fmt(lat.get('p50'))} | "
                         f"{fmt(lat.get('p99'))} | {fmt(lat.get('p999'))} | {fmt(lat.get('max'))} | "
                         f"{c('server_cpu_cores')} | {c('load_cpu_cores')} | {c('other_cpu_cores')} | "
                         f"{per} | {ratio('minimal')} | {ratio('threaded')} | "
                         f"{fmt(p['p99_ratio']['minimal'])} |")
        L.append("")
    if plots:
        L.append("## Plots")
        L.append("")
        for name, caption in plots:
            L.append(f"![{caption}]({name})")
            L.append("")
    if micro:
        L.append("## Micro-benchmarks (median of the repetitions)")
        L.append("")
        L.append("| binary | benchmark | items/s | MB/s | cv | label |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        for row in micro:
            L.append(f"| {row['binary']} | {row['name']} | {fmt(row.get('items_per_second'))} | "
                     f"{fmt(row['bytes_per_second'] / 1e6 if row.get('bytes_per_second') else None)} | "
                     f"{row.get('cv', '—')} | {row.get('label', '')} |")
        L.append("")
    failures = meta.get("failures", [])
    L.append("## Checks")
    L.append("")
    if failures:
        L.append(f"{len(failures)} failures:")
        L.append("")
        for f in failures:
            L.append(f"- {f}")
    else:
        L.append("Every run: every reply right (0 mismatches, 0 errors), every server started "
                 "and stopped cleanly.")
    L.append("")
    (out_dir / "report.md").write_text("\n".join(L))


# ---------------------------------------------------------------------------------------------
# Plots (gnuplot, SVG)

def gnuplot(out_dir, script_name, script):
    (out_dir / "plots" / script_name).write_text(script)
    r = subprocess.run(["gnuplot", script_name], cwd=out_dir / "plots", capture_output=True,
                       text=True)
    if r.returncode != 0:
        return f"gnuplot {script_name} failed: {r.stderr.strip()}"
    return None


SVG_HEAD = """set terminal svg size 900,520 dynamic enhanced font 'DejaVu Sans,12' background rgb 'white'
set grid ytics lc rgb '#dddddd'
set key outside right top
"""


COLOURS = ["#1b9e77", "#d95f02", "#66a61e", "#e6ab02", "#7570b3", "#e7298a", "#a6761d", "#666666"]


KNOWN_COLOURS = {"reverbd-w1": COLOURS[0], "reverbd-w2": COLOURS[1], "reverbd-w1-io_uring": COLOURS[2],
                 "reverbd-w2-io_uring": COLOURS[3], "threaded": COLOURS[4], "minimal": COLOURS[5]}


def colour_of(servers, server):
    """One colour per server, the same in every plot and every run."""
    return KNOWN_COLOURS.get(server.name, COLOURS[servers.index(server) % len(COLOURS)])


def plot_all(out_dir, meta, servers, workloads, points):
    """Writes the SVGs; returns ([(file, caption)], [failure messages])."""
    pdir = out_dir / "plots"
    pdir.mkdir(exist_ok=True)
    plots, failures = [], []
    subtitle = f"{meta['cpu_model']}, {meta['nproc']} CPUs, {meta['date'][:10]}, " \
               f"median of {meta['runs']} runs (bars: min-max)"

    # 1. requests/s by connection count, one line per server.
    closed = sorted((w for w in workloads if w.kind == "closed"), key=lambda w: w.connections)
    series = []
    for s in servers:
        rows = []
        for w in closed:
            p = find_point(points, w.name, s.name)
            if p and p[w.metric]:
                m = p[w.metric]
                rows.append(f"{w.connections} {m['median']} {m['min']} {m['max']}")
        if rows:
            (pdir / f"requests-{s.name}.dat").write_text("\n".join(rows) + "\n")
            series.append(f"'requests-{s.name}.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 "
                          f"lc rgb '{colour_of(servers, s)}' title '{s.name}'")
    if series:
        script = SVG_HEAD + f"""set output 'requests_by_connections.svg'
set title "Closed loop, 17-byte messages: requests/s by connections\\n{{/*0.8 {subtitle}}}"
set logscale x
set xlabel 'connections'
set ylabel 'requests/s'
set format y '%.0s%c'
set xtics ({', '.join(f'"{w.connections}" {w.connections}' for w in closed)})
set xrange [{closed[0].connections * 0.7}:{closed[-1].connections * 1.4}]
set yrange [0:*]
plot {', '.join(series)}
"""
        err = gnuplot(out_dir, "requests.gp", script)
        if err:
            failures.append(err)
        else:
            plots.append(("plots/requests_by_connections.svg", "requests/s by connection count"))

    # 2. latency percentile spectrum at 50 connections (or the largest closed workload below it).
    spectrum_wl = next((w for w in closed if w.connections == 50), closed[-1] if closed else None)
    series = []
    for s in servers:
        p = spectrum_wl and find_point(points, spectrum_wl.name, s.name)
        if not p:
            continue
        # x = "nines": p50 -> 0.30, p90 -> 1, p99 -> 2, p99.9 -> 3, p99.99 -> 4.
        rows = [f"{-math.log10(1 - pct / 100):.4f} {p['latency_us'][key]}"
                for key, pct in PERCENTILES if p["latency_us"].get(key)]
        if rows:
            (pdir / f"latency-{s.name}.dat").write_text("\n".join(rows) + "\n")
            series.append(f"'latency-{s.name}.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 "
                          f"lc rgb '{colour_of(servers, s)}' title '{s.name}'")
    if series:
        script = SVG_HEAD + f"""set output 'latency_spectrum.svg'
set title "Latency percentiles, {spectrum_wl.title}\\n{{/*0.8 {subtitle.replace(' (bars: min-max)', '')}, per-percentile median}}"
set xlabel 'percentile'
set ylabel 'latency (µs)'
set logscale y
set xtics ("p50" 0.301, "p90" 1, "p99" 2, "p99.9" 3, "p99.99" 4)
set xrange [0.2:4.2]
plot {', '.join(series)}
"""
        err = gnuplot(out_dir, "latency.gp", script)
        if err:
            failures.append(err)
        else:
            plots.append(("plots/latency_spectrum.svg",
                          f"latency percentile spectrum, {spectrum_wl.name}"))

    # 3-5. One bar chart per remaining workload: churn, bulk, idle.
    for wl in workloads:
        if wl.kind == "closed":
            continue
        rows = []
        for s in servers:
            p = find_point(points, wl.name, s.name)
            if p and p[wl.metric]:
                m = p[wl.metric]
                rows.append(f"{len(rows)} \"{s.name}\" {m['median']} {m['min']} {m['max']} "
                            f"0x{colour_of(servers, s)[1:]}")
        if not rows:
            continue
        (pdir / f"{wl.name}.dat").write_text("\n".join(rows) + "\n")
        ylabel = {"churn": "connections/s", "bulk": "MB/s of replies",
                  "idle": "server RSS per connection (bytes)"}[wl.kind]
        svg = {"churn": "connections_per_second.svg", "bulk": "bulk_mb_per_second.svg",
               "idle": "rss_per_idle_connection.svg"}[wl.kind]
        script = SVG_HEAD + f"""set output '{svg}'
set title "{wl.title}\\n{{/*0.8 {subtitle}}}"
set ylabel '{ylabel}'
set yrange [0:*]
set xrange [-0.6:{len(rows) - 0.4}]
set xtics nomirror
set style fill solid 0.7 border -1
set boxwidth 0.6
set key off
plot '{wl.name}.dat' using 1:3:6:xtic(2) with boxes lc rgb variable, \\
     '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt -1, \\
     '' using 1:5:($3 >= 1000 ? sprintf('%.0f', $3) : sprintf('%.3g', $3)) with labels offset 0,0.8 font ',10'
"""
        err = gnuplot(out_dir, f"{wl.name}.gp", script)
        if err:
            failures.append(err)
        else:
            plots.append((f"plots/{svg}", wl.title))
    for name, _ in plots:
        f = out_dir / name
        if not f.exists() or f.stat().st_size < 200 or "<svg" not in read_text(f):
            failures.append(f"plot {name} was not written")
    return plots, failures


# ---------------------------------------------------------------------------------------------
# Micro-benchmarks

def run_micro(build_dir, out_dir, quick, nice=0):
    """Runs every bench_* binary, JSON into micro/; returns (median rows, failures)."""
    rows, failures = [], []
    bins = sorted(p for p in (build_dir / "bench").glob("bench_*")
                  if p.is_file() and os.access(p, os.X_OK))
    mdir = out_dir / "micro"
    mdir.mkdir(exist_ok=True)
    for b in bins:
        out = mdir / f"{b.name}.json"
        cmd = [str(b), f"--benchmark_out={out}", "--benchmark_out_format=json"]
        if quick:
            # A smoke run: the first benchmark only, as short as Google Benchmark allows.
            listed = subprocess.run([str(b), "--benchmark_list_tests"], capture_output=True,
                                    text=True).stdout.split()
            if not listed:
                failures.append(f"{b.name} lists no benchmarks")
                continue
            cmd += [f"--benchmark_filter=^{re.escape(listed[0])}$", "--benchmark_min_time=0.001"]
        log(f"micro-benchmark {b.name}")
        r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=niceness(nice))
        (mdir / f"{b.name}.log").write_text(r.stdout + r.stderr)
        if SANITIZER_REPORT.search(r.stdout + r.stderr):
            failures.append(f"{b.name}: sanitizer report; see micro/{b.name}.log")
        if r.returncode != 0:
            failures.append(f"{b.name} exited with status {r.returncode}; see micro/{b.name}.log")
            continue
        try:
            data = json.loads(out.read_text())
        except (OSError, ValueError):
            failures.append(f"{b.name} wrote no JSON")
            continue
        cvs = {bm.get("run_name"): bm for bm in data.get("benchmarks", [])
               if bm.get("aggregate_name") == "cv"}
        for bm in data.get("benchmarks", []):
            if bm.get("error_occurred"):
                failures.append(f"{b.name} {bm.get('name')}: {bm.get('error_message')}")
            if bm.get("aggregate_name") not in ("median", None):
                continue
            if bm.get("aggregate_name") is None and bm.get("run_name") in cvs:
                continue  # single repetitions of an aggregated benchmark
            cv = cvs.get(bm.get("run_name"), {})
            cv_txt = None
            for key in ("items_per_second", "bytes_per_second", "real_time"):
                if key in cv:
                    cv_txt = f"{cv[key] * 100:.1f}%"
                    break
            name = re.sub(r"/(repeats:\d+|min_time:[\d.]+|real_time)", "",
                          bm.get("run_name", bm.get("name", "")))
            rows.append({"binary": b.name, "name": name,
                         "items_per_second": bm.get("items_per_second"),
                         "bytes_per_second": bm.get("bytes_per_second"),
                         "real_time": bm.get("real_time"), "time_unit": bm.get("time_unit"),
                         "cv": cv_txt or "—", "label": bm.get("label", "")})
    return rows, failures


# ---------------------------------------------------------------------------------------------
# Main

def parse_args():
    ap = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Release build, then reverbd against the baseline servers (threaded, minimal) "
                    "with reverb-load; writes bench/results/<UTC date>-<host>/.")
    ap.add_argument("--quick", action="store_true",
                    help="tiny matrix, 1 short run per point (< 60 s): a smoke test of the pipeline")
    ap.add_argument("--build-dir", default=os.environ.get("BENCH_BUILD_DIR", "build-release"),
                    help="build directory (default build-release; set up as a release build)")
    ap.add_argument("--no-build", action="store_true",
                    help="use the build directory as it is (no set-up, no compile)")
    ap.add_argument("--out", help="output folder (default bench/results/<UTC date>-<host>[-quick])")
    ap.add_argument("--runs", type=int, help="runs per point (default 3, quick 1)")
    ap.add_argument("--duration", type=float, help="measured seconds per run (default 5, quick 0.5)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per run (default 1, quick 0.2)")
    ap.add_argument("--servers", help="comma-separated subset of server names")
    ap.add_argument("--workloads", help="comma-separated subset of workload names")
    ap.add_argument("--add-server", action="append", default=[], metavar="'NAME=BINARY ARGS'",
                    help="one more server row, e.g. an experimental reverbd: "
                         "'reverbd-x=/tmp/x/reverbd --workers 1 --unit byte' (repeatable; "
                         "it gets --listen and --framing like the others)")
    ap.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    ap.add_argument("--nice", type=int, default=0,
                    help="nice value for the servers, reverb-load and the micro-benchmarks, e.g. -10 on a shared machine "
                         "so other work takes less CPU from them (negative values need root); "
                         "the report says which was used")
    ap.add_argument("--idle-timeout", type=float, default=60.0,
                    help="seconds for each batch of idle connections to get its replies")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.duration is None:
        args.duration = 0.5 if args.quick else 5.0
    if args.warmup is None:
        args.warmup = 0.2 if args.quick else 1.0
    return args


def build(build_dir):
    subprocess.run([str(ROOT / "scripts" / "setup")], check=True)
    if not (build_dir / "build.ninja").exists():
        subprocess.run(["meson", "setup", str(build_dir), "--buildtype=release"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["meson", "compile", "-C", str(build_dir)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def build_type(build_dir):
    try:
        opts = json.loads((build_dir / "meson-info" / "intro-buildoptions.json").read_text())
        values = {o["name"]: o["value"] for o in opts}
        kind = values.get("buildtype", "?")
        san = values.get("b_sanitize", "none")
        return kind + ("" if san in ("none", "") else f", sanitize={san}")
    except (OSError, ValueError, KeyError):
        return "unknown"


def discover_servers(build_dir):
    """reverbd with 1 and 2 workers on each backend it was built with, then the baselines.
    reverbd reverses bytes here (--unit byte), as the baselines and reverb-load do."""
    reverbd = build_dir / "src" / "reverbd" / "reverbd"
    help_text = subprocess.run([str(reverbd), "--help"], capture_output=True, text=True).stdout
    backends = []
    m = re.search(r"^\s*--backend\b.*(?:\n\s{20,}\S.*)*", help_text, re.MULTILINE)
    if m:
        backends = [b for b in ("epoll", "io_uring") if b in m.group(0)]
    servers = []
    for backend in backends or [None]:
        for workers in (1, 2):
            name = f"reverbd-w{workers}" + (f"-{backend}" if backend not in (None, "epoll") else "")
            extra = ["--workers", str(workers), "--unit", "byte"]
            if backend:
                extra += ["--backend", backend]
            servers.append(Server(name, reverbd, extra, "reverbd"))
    servers.append(Server("threaded", build_dir / "bench" / "threaded", [], "baseline"))
    servers.append(Server("minimal", build_dir / "bench" / "minimal", [], "baseline"))
    return servers


def main():
    args = parse_args()
    started = time.monotonic()
    build_dir = (ROOT / args.build_dir).resolve() if not os.path.isabs(args.build_dir) \
        else Path(args.build_dir)
    if not args.no_build:
        build(build_dir)
    # Children inherit this: 10,000 connections need more descriptors than the usual 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tools = {"reverb-load": build_dir / "tools" / "reverb-load"}
    missing = [str(p) for p in [tools["reverb-load"], build_dir / "src" / "reverbd" / "reverbd",
                                build_dir / "bench" / "threaded", build_dir / "bench" / "minimal"]
               if not p.exists()]
    if missing:
        log("missing binaries: " + ", ".join(missing) + " (build first, or drop --no-build)")
        return 1
    if shutil.which("gnuplot") is None:
        log("gnuplot not found: install gnuplot-nox (scripts/setup does)")
        return 1

    meta = machine_info()
    meta.update({"command": " ".join(["scripts/bench", *sys.argv[1:]]),
                 "quick": args.quick, "runs": args.runs, "duration": args.duration,
                 "warmup": args.warmup, "nice": args.nice, "build_dir": str(build_dir.relative_to(ROOT)
                                                          if build_dir.is_relative_to(ROOT)
                                                          else build_dir),
                 "build_type": build_type(build_dir)})
    stamp = meta["date"][:10]
    out_dir = Path(args.out) if args.out else \
        ROOT / "bench" / "results" / f"{stamp}-{meta['host']}{'-quick' if args.quick else ''}"
    if out_dir.exists():
        # Replace an earlier run's folder, never anything else.
        if not out_dir.is_dir() or (any(out_dir.iterdir())
                                    and not (out_dir / "results.json").exists()):
            log(f"{out_dir} exists and is not an earlier results folder; choose another --out")
            return 2
        shutil.rmtree(out_dir)
    (out_dir / "raw").mkdir(parents=True)

    servers = discover_servers(build_dir)
    workloads = quick_workloads() if args.quick else full_workloads()
    if args.servers:
        keep = set(args.servers.split(","))
        servers = [s for s in servers if s.name in keep]
    for spec in args.add_server:
        name, _, command = spec.partition("=")
        words = command.split()
        if not name or not words:
            log(f"--add-server '{spec}': expected NAME=BINARY [ARGS]")
            return 2
        binary = Path(words[0]).resolve()
        family = "reverbd" if binary.name == "reverbd" else "baseline"
        # After the other reverbd rows, so tables and plots keep the baselines last.
        position = sum(1 for s in servers if s.family == "reverbd")
        servers.insert(position, Server(name, binary, words[1:], family))
    if args.workloads:
        keep = set(args.workloads.split(","))
        workloads = [w for w in workloads if w.name in keep]
    log(f"{len(servers)} servers x {len(workloads)} workloads x {args.runs} runs -> {out_dir}")

    records = []
    for wl in workloads:
        for run in range(args.runs):
            # Rotate the order each run, so no server always follows the same neighbour.
            order = servers[run % len(servers):] + servers[:run % len(servers)]
            for server in order:
                rec = run_point(args, tools, server, wl, run, out_dir)
                records.append(rec)
                headline = rec.get(wl.metric)
                log(f"{wl.name:<12} {server.name:<20} run {run + 1}: "
                    f"{fmt(headline)} {wl.unit}" +
                    (f"  p99 {fmt((rec.get('latency_us') or {}).get('p99'))} µs"
                     if wl.kind != "idle" else "") +
                    (f"  FAILED: {'; '.join(rec['failures'])}" if rec["failures"] else ""))

    # A reverbd variant that fell back to another backend is the same server twice: say so.
    meta["ready_lines"] = {s.name: sorted({r.get("ready_line", "") for r in records
                                           if r["server"] == s.name}) for s in servers}
    failures = [f for r in records for f in r["failures"]]
    points = summarise(records, servers, workloads)
    goal_rows = goals(points, servers, workloads)
    micro = []
    if not args.no_micro:
        micro, micro_failures = run_micro(build_dir, out_dir, args.quick, args.nice)
        failures += micro_failures
    plots, plot_failures = plot_all(out_dir, meta, servers, workloads, points)
    failures += plot_failures
    # The smoke checks: everything ran, every reply was right, every plot is there.
    expected_points = len(servers) * len(workloads)
    got = sum(1 for p in points if p["runs"] == args.runs)
    if got != expected_points:
        failures.append(f"{expected_points - got} points lack runs")
    for p in points:
        wl = next(w for w in workloads if w.name == p["workload"])
        if not p.get(wl.metric):
            failures.append(f"{p['workload']}/{p['server']}: no {wl.metric} measured")
    meta["failures"] = failures
    meta["elapsed_seconds"] = time.monotonic() - started

    results = {
        "meta": meta,
        "servers": [{"name": s.name, "binary": str(s.binary.name), "args": s.extra,
                     "family": s.family} for s in servers],
        "workloads": [w.__dict__ for w in workloads],
        "points": points,
        "goals": goal_rows,
        "runs": records,
        "micro": micro,
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    write_report(out_dir, meta, servers, workloads, points, goal_rows, micro, plots)

    for name in ("results.json", "report.md"):
        if not (out_dir / name).exists():
            failures.append(f"{name} missing")
    log(f"wrote {out_dir} in {meta['elapsed_seconds']:.0f} s")
    if failures:
        for f in failures:
            log("FAILED: " + f)
        log(f"{len(failures)} failures")
        return 1
    log("all runs complete: 0 mismatches, 0 errors, every server stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
