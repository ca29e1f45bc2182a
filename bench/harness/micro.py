"""The Google Benchmark micro-benchmarks (build/bench/bench_*), run beside the servers.

Runs every bench_* binary of the build with JSON output into micro/ (with --quick, only each
binary's first benchmark, as briefly as Google Benchmark allows) and keeps the median row of each
benchmark with its coefficient of variation for the report.
"""

import json
import os
import re
import subprocess

from .common import SANITIZER_REPORT, log
from .processes import niceness


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
