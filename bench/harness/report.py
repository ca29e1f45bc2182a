"""report.md: the machine, the command, the goals, one table per workload, plots, checks.

Numbers are formatted here (fmt, fmt_range: a dash for a figure that is missing, such as a ratio
to minimal_uring in a build without liburing, whose column stays so the tables keep one shape); the
tables read the points from stats.py and the servers and workloads from workloads.py, and say
which ready line each server printed so a backend fallback shows.
"""

import re
import statistics

from .stats import find_point
from .workloads import KNEE_OBJECTIVES


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


def knee_table(servers, wl, points):
    """The knee workload's table: per server, the highest achieved rate at each latency objective
    (median [min – max] over the runs) and its ratio to minimal's, after the closed-loop maximum
    the sweep's fractions were taken of."""
    (_, _, first, first_label), (_, _, second, second_label) = KNEE_OBJECTIVES
    L = [f"Open-loop steps at {', '.join(f'{f:g}' for f in wl.fractions)} of each server's "
         "closed-loop maximum at the same connection count; latency from each request's intended "
         "send time. A rate counts when its step's percentile met the objective and the step "
         "completed at least 90% of the requests it asked for; — where no step did.",
         "",
         f"| server | closed-loop max req/s | req/s at {first_label} | x minimal | "
         f"req/s at {second_label} | x minimal | p99 µs at each step |",
         "| --- " * 7 + "|"]
    for s in servers:
        p = find_point(points, wl.name, s.name)
        if p is None:
            continue
        steps = ", ".join(fmt(st["latency_us"].get("p99")) for st in p.get("knee") or [])
        L.append(f"| {s.name} | {fmt_range(p.get('closed_max'))} | {fmt_range(p.get(first))} | "
                 f"{fmt(p['ratio']['minimal'], 3)} | {fmt_range(p.get(second))} | "
                 f"{fmt((p.get('ratio_' + second) or {}).get('minimal'), 3)} | {steps} |")
    L.append("")
    return L


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
        if wl.kind == "knee":
            L.extend(knee_table(servers, wl, points))
            continue
        if wl.kind == "idle":
            L.append("| server | RSS per connection (B) | RSS after (KiB) | threads | server CPU | "
                     "x minimal | x minimal_uring | x threaded |")
            L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        else:
            cpu_col = "server CPU µs/conn" if wl.kind == "churn" else "server CPU µs/req"
            L.append(f"| server | {wl.unit} | p50 µs | p99 µs | p99.9 µs | max µs | server CPU | "
                     f"load CPU | other CPU | {cpu_col} | x minimal | x minimal_uring | "
                     f"x threaded | p99 x minimal |")
            L.append("| --- " * 14 + "|")
        for s in servers:
            p = find_point(points, wl.name, s.name)
            if p is None:
                continue
            c = lambda key: fmt(p[key]["median"], 2) if p.get(key) else "—"
            ratio = lambda base: fmt(p["ratio"][base], 3)
            if wl.kind == "idle":
                L.append(f"| {s.name} | {fmt_range(p[wl.metric], 4)} | {c('rss_after_kib')} | "
                         f"{c('threads_after')} | {c('server_cpu_cores')} | {ratio('minimal')} | "
                         f"{ratio('minimal_uring')} | {ratio('threaded')} |")
            else:
                lat = p["latency_us"]
                per = c("server_cpu_us_per_connection" if wl.kind == "churn"
                        else "server_cpu_us_per_request")
                L.append(f"| {s.name} | {fmt_range(p[wl.metric])} | {fmt(lat.get('p50'))} | "
                         f"{fmt(lat.get('p99'))} | {fmt(lat.get('p999'))} | {fmt(lat.get('max'))} | "
                         f"{c('server_cpu_cores')} | {c('load_cpu_cores')} | {c('other_cpu_cores')} | "
                         f"{per} | {ratio('minimal')} | {ratio('minimal_uring')} | "
                         f"{ratio('threaded')} | "
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
