"""Unit tests for the harness's pure parts: no server, no build, no network, standard library only.

Each test_*.py covers one module (stats: medians, ratios and goals; report: the markdown tables;
results: the results.json schema; workloads: the --list-backends parser and the servers made from
it; plots: each server's colour), except test_knee.py, which follows the knee workload through
stats, report, results and plots.
tap.py runs them all and prints TAP, which is how meson's `harness` test (bench/meson.build, suites
unit and bench) counts each case; `python3 -m unittest discover -s harness/tests -t .` from bench/
runs them too.
"""
