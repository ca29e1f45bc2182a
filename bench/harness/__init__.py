"""The end-to-end benchmark behind scripts/bench: reverbd beside the baseline servers.

For every workload, run after run, each server in turn is started alone on 127.0.0.1 port 0 (its
ready line names the port), driven by reverb-load (or, for idle connections, by the idle client in
processes.py), measured (its CPU from /proc/PID/stat, the load generator's from wait4, the rest of
the machine's from /proc/stat) and stopped by PID. Every point is the median of the runs with their
min and max, beside the same figure for `minimal` and `threaded`. The `knee` workload sweeps each
server in open loop at fractions of its closed-loop maximum (reverb-load --rate-steps) and reports
the highest rate at p99 <= 1 ms and at p99.9 <= 10 ms, with plots/knee.svg. Writes results.json,
report.md, gnuplot SVG plots and the raw per-run files into one folder.

Exit status: 0 when every run completed with every reply right (no mismatch, no error, every server
started and stopped cleanly) and every output file was written; 1 otherwise, saying why. Speed
never decides it. Python 3 standard library only.

Modules, in the order a run uses them: common (paths, limits, /proc readings), workloads (what
is measured), processes (the server, reverb-load, the idle client), runs (one run, one record),
stats (medians, ranges, ratios, goals), plots (gnuplot SVGs), report (report.md), micro
(Google Benchmark binaries), cli (options and main). `python3 -m harness` from bench/ runs it;
scripts/bench is the way in.
"""
