"""report.py: number formatting and the markdown report, from a small fixed set of runs."""

import copy
import tempfile
import unittest
from pathlib import Path

from harness.report import fmt, fmt_range, write_report
from harness.stats import goals, summarise

from .fixtures import CLOSED, IDLE, META, closed_run, idle_run, servers


class FmtTest(unittest.TestCase):
    def test_missing_is_a_dash(self):
        self.assertEqual(fmt(None), "—")
        self.assertEqual(fmt_range(None), "—")

    def test_large_floats_are_whole_with_thousands_separators(self):
        self.assertEqual(fmt(12345.6), "12,346")
        self.assertEqual(fmt(1000.0), "1,000")

    def test_small_floats_keep_significant_digits(self):
        self.assertEqual(fmt(0.123456), "0.123")
        self.assertEqual(fmt(0.125, 2), "0.12")
        self.assertEqual(fmt(1.0), "1")

    def test_ints_and_text(self):
        self.assertEqual(fmt(1048576), "1,048,576")
        self.assertEqual(fmt(0), "0")
        self.assertEqual(fmt("epoll"), "epoll")

    def test_range(self):
        self.assertEqual(fmt_range({"median": 12500.0, "min": 12000.0, "max": 13000.0}),
                         "12,500 [12,000 – 13,000]")


class WriteReportTest(unittest.TestCase):
    """Three servers, a closed-loop and an idle workload, three runs each; no minimal_uring, as in
    a build without liburing."""

    @classmethod
    def setUpClass(cls):
        srv = servers("reverbd-w1", "threaded", "minimal")
        records = [closed_run("reverbd-w1", i + 1, rps, p99=p99)
                   for i, (rps, p99) in enumerate([(12000.0, 90.0), (13000.0, 110.0),
                                                   (12500.0, 100.0)])]
        records += [closed_run("threaded", i + 1, 10000.0, p99=200.0, cpu=1.0) for i in range(3)]
        records += [closed_run("minimal", i + 1, 25000.0, p99=50.0, cpu=0.75) for i in range(3)]
        records += [idle_run(name, i + 1, rss) for name, rss in
                    [("reverbd-w1", 1500.0), ("threaded", 9000.0), ("minimal", 1000.0)]
                    for i in range(3)]
        points = summarise(records, srv, [CLOSED, IDLE])
        cls.meta = copy.deepcopy(META)
        cls.meta["ready_lines"] = {"reverbd-w1": [
            "reverbd: listening on 127.0.0.1:4000 framing=chunk backend=epoll",
            "reverbd: listening on 127.0.0.1:4001 framing=chunk backend=epoll"]}
        micro = [{"binary": "bench_reverse", "name": "BM_Reverse/64", "items_per_second": 2.5e7,
                  "bytes_per_second": 1.6e9, "real_time": 40.0, "time_unit": "ns", "cv": "1.2%",
                  "label": ""}]
        cls.args = (srv, [CLOSED, IDLE], points, goals(points, srv, [CLOSED, IDLE]), micro,
                    [("plots/requests_by_connections.svg", "requests/s by connection count")])
        cls.lines = cls.render(cls.meta)

    @classmethod
    def render(cls, meta):
        with tempfile.TemporaryDirectory() as tmp:
            write_report(Path(tmp), meta, *cls.args)
            return (Path(tmp) / "report.md").read_text().splitlines()

    def test_header_names_machine_command_and_runs(self):
        self.assertEqual(self.lines[0], "# reverb benchmark: 2026-11-29T19:00:00Z on testhost")
        self.assertIn("- Machine: Test CPU 9000, 2 CPUs, 3900 MiB, Linux 6.1.0", self.lines)
        self.assertIn("- Command: `scripts/bench --quick`", self.lines)
        self.assertTrue(any(line.startswith("- Each point: median [min – max] of 3 runs of 0.5 s "
                                            "after 0.2 s warm-up;") for line in self.lines))

    def test_one_ready_line_per_framing(self):
        self.assertIn("- `reverbd-w1`: `reverbd --workers 1 --unit byte` — ready lines: "
                      "`reverbd: listening on 127.0.0.1:4000 framing=chunk backend=epoll`",
                      self.lines)

    def test_goal_rows(self):
        self.assertIn("| reverbd-w1 | closed-50: at least 1.0x minimal | 0.5x | **no** |",
                      self.lines)
        self.assertIn("| reverbd-w1 | closed-50: p99 at most 1.5x minimal's | 2x | **no** |",
                      self.lines)
        self.assertIn("| reverbd-w1 | idle-200: at most 4096 B RSS per connection | 1,500 B | yes |",
                      self.lines)
        # The io_uring goals without minimal_uring: unmeasured, a dash, not met.
        self.assertIn("| reverbd-w1 | closed-50, best reverbd variant: at least 1.0x minimal | 0.5x "
                      "| **no** |", self.lines)
        self.assertIn("| reverbd-w1 | closed-50, best reverbd variant: at least 0.9x minimal_uring "
                      "| — | **no** |", self.lines)

    def test_closed_loop_rows(self):
        # 12,500 = median of 12,000 / 13,000 / 12,500 req/s; 0.5 = 12,500 / minimal's 25,000;
        # — = no minimal_uring to compare with; 1.25 = / threaded's 10,000; 40 µs/req = median of
        # 0.5 cores * 1e6 / req/s per run.
        self.assertIn("| server | req/s | p50 µs | p99 µs | p99.9 µs | max µs | server CPU | "
                      "load CPU | other CPU | server CPU µs/req | x minimal | x minimal_uring | "
                      "x threaded | p99 x minimal |", self.lines)
        self.assertIn("| reverbd-w1 | 12,500 [12,000 – 13,000] | 50 | 100 | 200 | 400 | 0.5 | "
                      "0.25 | 0.12 | 40 | 0.5 | — | 1.25 | 2 |", self.lines)
        self.assertIn("| minimal | 25,000 [25,000 – 25,000] | 25 | 50 | 100 | 200 | 0.75 | 0.25 | "
                      "0.12 | 30 | 1 | — | 2.5 | 1 |", self.lines)

    def test_idle_rows(self):
        self.assertIn("## idle-200: 200 idle connections", self.lines)
        self.assertIn("| server | RSS per connection (B) | RSS after (KiB) | threads | server CPU | "
                      "x minimal | x minimal_uring | x threaded |", self.lines)
        self.assertIn("| reverbd-w1 | 1,500 [1,500 – 1,500] | 4,096 | 2 | 0.01 | 1.5 | — | 0.167 |",
                      self.lines)
        self.assertIn("| minimal | 1,000 [1,000 – 1,000] | 4,096 | 2 | 0.01 | 1 | — | 0.111 |",
                      self.lines)

    def test_tables_keep_server_order(self):
        at = self.lines.index("## closed-50: closed loop, 17 B, 50 connections")
        rows = [line.split(" | ")[0] for line in self.lines[at + 4:at + 7]]
        self.assertEqual(rows, ["| reverbd-w1", "| threaded", "| minimal"])

    def test_plots_and_micro(self):
        self.assertIn("![requests/s by connection count](plots/requests_by_connections.svg)",
                      self.lines)
        self.assertIn("| bench_reverse | BM_Reverse/64 | 25,000,000 | 1,600 | 1.2% |  |",
                      self.lines)

    def test_checks_without_failures(self):
        self.assertEqual(self.lines[-1], "Every run: every reply right (0 mismatches, 0 errors), "
                                         "every server started and stopped cleanly.")

    def test_checks_list_failures(self):
        meta = copy.deepcopy(self.meta)
        meta["failures"] = ["closed-50.minimal.run1: 3 wrong replies"]
        lines = self.render(meta)
        at = lines.index("## Checks")
        self.assertEqual(lines[at + 2:], ["1 failures:", "",
                                          "- closed-50.minimal.run1: 3 wrong replies"])


class MinimalUringReportTest(unittest.TestCase):
    """reverbd on io_uring beside both one-thread baselines: the x minimal_uring column."""

    @classmethod
    def setUpClass(cls):
        srv = servers("reverbd-w1-io_uring", "threaded", "minimal", "minimal_uring")
        rps = {"reverbd-w1-io_uring": 18000.0, "threaded": 10000.0, "minimal": 20000.0,
               "minimal_uring": 24000.0}
        records = [closed_run(s.name, 1, rps[s.name]) for s in srv]
        records += [idle_run(s.name, 1, rss) for s, rss in zip(srv, [900.0, 9000.0, 1000.0, 600.0])]
        points = summarise(records, srv, [CLOSED, IDLE])
        with tempfile.TemporaryDirectory() as tmp:
            write_report(Path(tmp), META, srv, [CLOSED, IDLE], points,
                         goals(points, srv, [CLOSED, IDLE]), [], [])
            cls.lines = (Path(tmp) / "report.md").read_text().splitlines()

    def test_closed_loop_rows(self):
        # 0.75 = 18,000 / minimal_uring's 24,000, beside 0.9 = / minimal's 20,000.
        self.assertIn("| reverbd-w1-io_uring | 18,000 [18,000 – 18,000] | 50 | 100 | 200 | 400 | "
                      "0.5 | 0.25 | 0.12 | 28 | 0.9 | 0.75 | 1.8 | 1 |", self.lines)
        self.assertIn("| minimal_uring | 24,000 [24,000 – 24,000] | 50 | 100 | 200 | 400 | 0.5 | "
                      "0.25 | 0.12 | 21 | 1.2 | 1 | 2.4 | 1 |", self.lines)

    def test_idle_rows(self):
        self.assertIn("| reverbd-w1-io_uring | 900 [900 – 900] | 4,096 | 2 | 0.01 | 0.9 | 1.5 | "
                      "0.1 |", self.lines)

    def test_goal_rows(self):
        self.assertIn("| reverbd-w1-io_uring | closed-50, best reverbd variant: at least 0.9x "
                      "minimal_uring | 0.75x | **no** |", self.lines)

    def test_minimal_uring_is_listed_last(self):
        at = self.lines.index("## closed-50: closed loop, 17 B, 50 connections")
        self.assertEqual([line.split(" | ")[0] for line in self.lines[at + 4:at + 8]],
                         ["| reverbd-w1-io_uring", "| threaded", "| minimal", "| minimal_uring"])
        self.assertIn("- `minimal_uring`: `minimal_uring `", self.lines)


if __name__ == "__main__":
    unittest.main()
