"""The cluster workload (`scripts/bench --cluster`): reverb-load through HAProxy to 1, 2 and 4
reverbd (quick: 1 and 2), beside the same load sent straight to the same backends.

scripts/cluster starts the backends (`--workers 1` each) and HAProxy (deploy/haproxy/reverb.cfg,
PROXY v2 to the backends). Each backend also listens, without PROXY, on one shared loopback port
with SO_REUSEPORT: that is the direct path, on which the kernel spreads connections over the same
processes HAProxy balances over. Two loads per point, one reverb-load each: closed loop (50
connections, 17 B, chunk framing: req/s) and connection churn (50 slots: conn/s). HAProxy's CPU
is sampled over the measured window.

On one 2-core machine HAProxy, the backends and reverb-load share the same two cores: the table
shows what the balancer costs per request and per connection, not how a cluster scales (more
backends add no cores). The report says so. Writes cluster.json and cluster.md in the output
folder; raw logs under raw/cluster-*.
"""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .common import CLK_TCK, ROOT, log, process_cpu_ticks
from .processes import run_load, seconds_arg

KINDS = (
    # name, reverb-load arguments, headline key, unit
    ("closed", ["--connections", "50", "--size", "17"], "requests_per_second", "req/s"),
    ("churn", ["--mode", "connect", "--connections", "50", "--size", "17"],
     "connections_per_second", "conn/s"),
)


def backend_counts(quick):
    return [1, 2] if quick else [1, 2, 4]


def free_port(hosts):
    """A port free on every host right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as t:
                    t.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def run_cluster(args, build_dir, out_dir):
    """Runs every point; returns (records, failures)."""
    reverbd = build_dir / "src" / "reverbd" / "reverbd"
    reverb_load = build_dir / "tools" / "reverb-load"
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        return [], ["haproxy not found: install Debian's haproxy (scripts/setup does)"]
    records, failures = [], []
    for count in backend_counts(args.quick):
        hosts = ["127.0.0.1"] + [f"127.0.0.{i + 1}" for i in range(1, count + 1)]
        port = free_port(hosts)
        direct_port = free_port(["127.0.0.1"])
        frontend_port = free_port(["127.0.0.1"])
        cdir = out_dir / "raw" / f"cluster-{count}"
        env = dict(os.environ, REVERBD=str(reverbd), HAPROXY=haproxy)
        up = subprocess.run(
            [str(ROOT / "scripts" / "cluster"), "up", str(count), "--frontend",
             f"127.0.0.1:{frontend_port}", "--port", str(port), "--dir", str(cdir), "--",
             "--workers", "1", "--unit", "byte", "--listen", f"127.0.0.1:{direct_port},proxy=off"],
            env=env, capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            failures.append(f"cluster of {count}: scripts/cluster up failed: "
                            f"{(up.stdout + up.stderr).strip()}")
            subprocess.run([str(ROOT / "scripts" / "cluster"), "down", "--dir", str(cdir)],
                           capture_output=True, timeout=120)
            continue
        haproxy_pid = int((cdir / "haproxy.pid").read_text())
        try:
            for path, target in (("haproxy", f"127.0.0.1:{frontend_port}"),
                                 ("direct", f"127.0.0.1:{direct_port}")):
                for kind, extra, metric, unit in KINDS:
                    rec = run_one(args, reverb_load, target, cdir, count, path, kind, extra,
                                  metric, unit, haproxy_pid)
                    records.append(rec)
                    failures += rec["failures"]
                    log(f"cluster {count} {path:7} {kind:6} {rec.get(metric) or 0:10.0f} {unit}")
        finally:
            subprocess.run([str(ROOT / "scripts" / "cluster"), "down", "--dir", str(cdir)],
                           capture_output=True, timeout=120)
    return records, failures


def run_one(args, reverb_load, target, cdir, count, path, kind, extra, metric, unit, haproxy_pid):
    tag = f"{path}-{kind}"
    json_path = cdir / f"{tag}.load.json"
    cmd = [str(reverb_load), "--target", target, "--threads", "1", "--payload", "ascii",
           "--unit", "byte", "--framing", "chunk", "--duration", seconds_arg(args.duration),
           "--warmup", seconds_arg(args.warmup), "--json", str(json_path), *extra]

    def sample():
        return process_cpu_ticks(haproxy_pid), None, time.monotonic()

    status, _, _, samples = run_load(cmd, cdir / f"{tag}.load.log",
                                     deadline=args.duration + args.warmup + 120, sample=sample,
                                     window=(args.warmup, args.warmup + args.duration),
                                     nice=args.nice)
    rec = {"backends": count, "path": path, "kind": kind, "metric": metric, "unit": unit,
           "load_command": " ".join(cmd), "failures": []}
    try:
        report = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        rec["failures"].append(f"cluster {count} {tag}: no readable JSON ({e})")
        return rec
    rec.update({k: report.get(k) for k in ("requests_per_second", "connections_per_second",
                                           "mismatches", "errors", "errors_by_cause")})
    latency = report.get("latency_us") or {}
    rec["p50_us"], rec["p99_us"] = latency.get("p50"), latency.get("p99")
    samples = sorted(samples, key=lambda x: x[2])
    if path == "haproxy" and len(samples) >= 2 and None not in (samples[0][0], samples[-1][0]):
        span = samples[-1][2] - samples[0][2]
        if span > 0:
            rec["haproxy_cpu_cores"] = (samples[-1][0] - samples[0][0]) / CLK_TCK / span
    if status != 0:
        rec["failures"].append(f"cluster {count} {tag}: reverb-load exited with status {status}")
    if rec.get("mismatches"):
        rec["failures"].append(f"cluster {count} {tag}: {rec['mismatches']} wrong replies")
    return rec


def cluster_table(records):
    """The markdown table of cluster.md: one row per backend count and load kind, HAProxy beside
    direct, and the ratio."""
    by = {(r["backends"], r["path"], r["kind"]): r for r in records}
    lines = ["| backends | load | through HAProxy | direct | HAProxy / direct | p99 via HAProxy (us) "
             "| p99 direct (us) | HAProxy CPU (cores) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for count in sorted({r["backends"] for r in records}):
        for kind, _, metric, unit in KINDS:
            via, direct = by.get((count, "haproxy", kind)), by.get((count, "direct", kind))
            if not via and not direct:
                continue
            a = (via or {}).get(metric)
            b = (direct or {}).get(metric)
            ratio = f"{a / b:.2f}x" if a and b else "—"

            def fmt(value, spec):
                return format(value, spec) if isinstance(value, (int, float)) else "—"
            lines.append(f"| {count} | {kind} ({unit}) | {fmt(a, ',.0f')} | {fmt(b, ',.0f')} | "
                         f"{ratio} | {fmt((via or {}).get('p99_us'), ',.0f')} | "
                         f"{fmt((direct or {}).get('p99_us'), ',.0f')} | "
                         f"{fmt((via or {}).get('haproxy_cpu_cores'), '.2f')} |")
    return "\n".join(lines) + "\n"


def write_cluster(out_dir, meta, records, failures):
    (out_dir / "cluster.json").write_text(json.dumps(
        {"meta": meta, "records": records, "failures": failures}, indent=2) + "\n")
    text = ["# Through HAProxy beside direct", "",
            f"{meta.get('date', '')}, {meta.get('host', '')}, {meta.get('cpu_model', '')}, "
            f"{meta.get('nproc', '?')} CPUs; `{meta.get('command', '')}`.", "",
            "reverb-load (one thread) through HAProxy (deploy/haproxy/reverb.cfg, roundrobin, "
            "PROXY v2) to N reverbd with `--workers 1`, and straight to the same processes (a "
            "shared SO_REUSEPORT port, no PROXY header). HAProxy, the backends and reverb-load "
            "share this machine's cores: the table shows what the balancer costs, not how a "
            "cluster scales.", "", cluster_table(records)]
    if failures:
        text += ["", "Failures:", ""] + [f"- {f}" for f in failures]
    (out_dir / "cluster.md").write_text("\n".join(text) + "\n")
