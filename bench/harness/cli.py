"""scripts/bench's command line and main(): build, pick the matrix, run it, write the outputs.

Parses the options, builds (unless --no-build), finds the servers the build has, runs every
server on every workload --runs times in a rotating order, then summarises, draws and writes
results.json and report.md into the output folder. main() returns the exit status: 0 when every
run completed with every reply right and every output was written, 1 otherwise, 2 for bad usage.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .cluster import run_cluster, write_cluster
from .common import ROOT, log, machine_info
from .micro import run_micro
from .plots import plot_all
from .report import fmt, write_report
from .results import build_results, validate_results
from .runs import run_point
from .stats import goals, summarise
from .workloads import (BackendsError, Server, discover_servers, full_workloads, knee_base,
                        quick_workloads)


def parse_args():
    ap = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Release build, then reverbd against the baseline servers (threaded, minimal, "
                    "and minimal_uring when built with liburing) with reverb-load; writes "
                    "bench/results/<UTC date>-<host>/.")
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
    ap.add_argument("--workloads",
                    help="comma-separated subset of workload names; `knee` (an open-loop sweep at "
                         "fractions of each server's closed-50 maximum, steps of at most 2 s after "
                         "0.5 s warm-up) takes that maximum from closed-50 when it runs too, else "
                         "measures it first")
    ap.add_argument("--add-server", action="append", default=[], metavar="'NAME=BINARY ARGS'",
                    help="one more server row, e.g. an experimental reverbd: "
                         "'reverbd-x=/tmp/x/reverbd --workers 1 --unit byte' (repeatable; "
                         "it gets --listen and --framing like the others)")
    ap.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    ap.add_argument("--cluster", action="store_true",
                    help="run only the cluster workload instead of the matrix: reverb-load "
                         "through HAProxy to 1, 2 and 4 reverbd (quick: 1 and 2) beside the same "
                         "backends direct; writes cluster.md and cluster.json (needs haproxy)")
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
    try:
        servers = discover_servers(build_dir)
    except BackendsError as e:
        log(str(e))
        return 1
    if not any(s.name == "minimal_uring" for s in servers):
        # Optional: bench/meson.build builds it only with liburing. Said once; its ratios read —.
        log(f"no {build_dir / 'bench' / 'minimal_uring'} (a build without liburing): "
            "running without the io_uring baseline")

    meta = machine_info()
    meta.update({"command": " ".join(["scripts/bench", *sys.argv[1:]]),
                 "quick": args.quick, "runs": args.runs, "duration": args.duration,
                 "warmup": args.warmup, "nice": args.nice, "build_dir": str(build_dir.relative_to(ROOT)
                                                          if build_dir.is_relative_to(ROOT)
                                                          else build_dir),
                 "build_type": build_type(build_dir)})
    stamp = meta["date"][:10]
    out_dir = Path(args.out) if args.out else \
        ROOT / "bench" / "results" / (f"{stamp}-{meta['host']}{'-quick' if args.quick else ''}"
                                      f"{'-cluster' if args.cluster else ''}")
    if out_dir.exists():
        # Replace an earlier run's folder, never anything else.
        if not out_dir.is_dir() or (any(out_dir.iterdir())
                                    and not (out_dir / "results.json").exists()
                                    and not (out_dir / "cluster.json").exists()):
            log(f"{out_dir} exists and is not an earlier results folder; choose another --out")
            return 2
        shutil.rmtree(out_dir)
    (out_dir / "raw").mkdir(parents=True)

    if args.cluster:
        records, failures = run_cluster(args, build_dir, out_dir)
        meta["elapsed_seconds"] = time.monotonic() - started
        write_cluster(out_dir, meta, records, failures)
        log(f"wrote {out_dir / 'cluster.md'} in {meta['elapsed_seconds']:.0f} s")
        for f in failures:
            log("FAILED: " + f)
        return 1 if failures or not records else 0

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
        base = knee_base(workloads, wl) if wl.kind == "knee" else None
        for run in range(args.runs):
            # Rotate the order each run, so no server always follows the same neighbour.
            order = servers[run % len(servers):] + servers[:run % len(servers)]
            for server in order:
                closed_max = None
                if base is not None:
                    # The knee's rates are fractions of this server's closed-loop maximum measured
                    # earlier in this run (the workloads run in order; knee comes after closed-50).
                    rates = [r["requests_per_second"] for r in records
                             if r["workload"] == base.name and r["server"] == server.name
                             and not r["failures"] and r.get("requests_per_second")]
                    closed_max = statistics.median(rates) if rates else None
                rec = run_point(args, tools, server, wl, run, out_dir, closed_max)
                records.append(rec)
                headline = rec.get(wl.metric)
                if wl.kind == "knee":
                    detail = "  p99 by step: " + ", ".join(
                        f"{fmt(s['requests_per_second'])}/s {fmt(s['latency_us'].get('p99'))} µs"
                        for s in rec.get("knee") or [])
                elif wl.kind != "idle":
                    detail = f"  p99 {fmt((rec.get('latency_us') or {}).get('p99'))} µs"
                else:
                    detail = ""
                log(f"{wl.name:<12} {server.name:<20} run {run + 1}: "
                    f"{fmt(headline)} {wl.unit}" + detail +
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
        if wl.kind == "knee":
            # No step may meet 1 ms on a busy machine or in a sanitizer build: the smoke check is
            # that every step was measured.
            missing = [s["fraction"] for s in p["knee"]
                       if s["requests_per_second"] is None or s["latency_us"]["p99"] is None]
            if missing:
                failures.append(f"{p['workload']}/{p['server']}: no figures for the steps at "
                                f"{', '.join(f'{f:g}' for f in missing)} of the closed-loop maximum")
        elif not p.get(wl.metric):
            failures.append(f"{p['workload']}/{p['server']}: no {wl.metric} measured")
    meta["failures"] = failures
    meta["elapsed_seconds"] = time.monotonic() - started

    results = build_results(meta, servers, workloads, points, goal_rows, records, micro)
    # A results.json the report or a later reader cannot read is a failure, said in the file too.
    failures += [f"results.json: {p}" for p in validate_results(results)]
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
