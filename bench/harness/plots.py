"""The SVG plots, drawn by gnuplot from .dat files written next to them in plots/.

Requests/s by connection count, the latency percentile spectrum at 50 connections, one bar
chart for each of the other workloads (churn, bulk, idle), and the knee (p99 against achieved
requests/s in open loop), each server in the same colour in every plot. plot_all returns the
plots it drew and a failure message for each one it could not.
"""

import math
import subprocess

from .common import PERCENTILES, read_text
from .stats import find_point


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
                 "reverbd-w2-io_uring": COLOURS[3], "threaded": COLOURS[4], "minimal": COLOURS[5],
                 "minimal_uring": COLOURS[6]}


def colour_of(servers, server):
    """One colour per server, the same in every plot and every run."""
    return KNOWN_COLOURS.get(server.name, COLOURS[servers.index(server) % len(COLOURS)])


def knee_rows(point):
    """`achieved-req/s p99-µs fraction` lines of a knee point, one per step with both figures."""
    return [f"{s['requests_per_second']} {s['latency_us']['p99']} {s['fraction']}"
            for s in point.get("knee") or []
            if s.get("requests_per_second") and s["latency_us"].get("p99")]


def plot_knee(out_dir, subtitle, servers, wl, points):
    """Draws plots/knee.svg; returns its name, a gnuplot failure message, or None when no server
    has a step to draw."""
    pdir = out_dir / "plots"
    series = []
    for s in servers:
        p = find_point(points, wl.name, s.name)
        rows = knee_rows(p) if p else []
        if rows:
            (pdir / f"knee-{s.name}.dat").write_text("\n".join(rows) + "\n")
            series.append(f"'knee-{s.name}.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 "
                          f"lc rgb '{colour_of(servers, s)}' title '{s.name}' noenhanced")
    if not series:
        return None
    script = SVG_HEAD + f"""set output 'knee.svg'
set title "Latency under rising load: open loop, 17-byte messages, 50 connections\\n{{/*0.8 {subtitle}, per-step median}}"
set xlabel "achieved requests/s (steps at {', '.join(f'{f:g}' for f in wl.fractions)} of each server's closed-50 maximum)"
set ylabel 'p99 latency (µs), from the intended send time'
set logscale y
set format x '%.0s%c'
set xrange [0:*]
set arrow from graph 0, first 1000 to graph 1, first 1000 nohead dt 2 lc rgb '#888888'
set label 'p99 = 1 ms' at graph 0.01, first 1150 textcolor rgb '#888888' font ',10'
plot {', '.join(series)}
"""
    return gnuplot(out_dir, "knee.gp", script) or "plots/knee.svg"


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
        if wl.kind in ("closed", "knee"):
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
    # 6. The knee: p99 (log scale) against the achieved requests/s of each open-loop step.
    for wl in (w for w in workloads if w.kind == "knee"):
        result = plot_knee(out_dir, subtitle.replace(" (bars: min-max)", ""), servers, wl, points)
        if result is None:
            continue
        if result.startswith("gnuplot"):
            failures.append(result)
        else:
            plots.append((result, f"{wl.name}: p99 against achieved requests/s"))
    for name, _ in plots:
        f = out_dir / name
        if not f.exists() or f.stat().st_size < 200 or "<svg" not in read_text(f):
            failures.append(f"plot {name} was not written")
    return plots, failures
