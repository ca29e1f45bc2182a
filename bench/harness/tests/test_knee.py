"""The knee workload: the rate that meets each latency objective, the point summarised over runs,
its table in report.md, its schema in results.json, its plot's data, and where its rates come from.
"""

import copy
import json
import tempfile
import unittest
from pathlib import Path

from harness.plots import knee_rows
from harness.report import write_report
from harness.results import build_results, validate_results
from harness.stats import find_point, goals, knee_rate, summarise
from harness.workloads import full_workloads, knee_base, quick_workloads

from .fixtures import CLOSED, KNEE, META, closed_run, knee_run, servers


def step(asked, achieved, p99, p999=None):
    return {"rate_asked": asked, "requests_per_second": achieved,
            "latency_us": {"p99": p99,
                           "p999": p999 if p999 is not None or p99 is None else p99 * 2}}


class KneeRateTest(unittest.TestCase):
    def test_highest_achieved_rate_whose_percentile_met_the_limit(self):
        steps = [step(1000, 1000, 200), step(2000, 1990, 600), step(3000, 2950, 1500),
                 step(4000, 3100, 90000)]
        self.assertEqual(knee_rate(steps, "p99", 1000), 1990)
        self.assertEqual(knee_rate(steps, "p99", 2000), 2950)
        self.assertEqual(knee_rate(steps, "p999", 1000), 1000)   # p99.9 = 2 x p99 here

    def test_at_the_limit_counts(self):
        self.assertEqual(knee_rate([step(1000, 1000, 1000)], "p99", 1000), 1000)

    def test_a_step_that_did_not_keep_up_never_counts(self):
        # 85% of the asked rate: requests were left waiting, whatever the latency of the rest.
        self.assertIsNone(knee_rate([step(1000, 850, 100)], "p99", 1000))
        self.assertEqual(knee_rate([step(1000, 900, 100)], "p99", 1000), 900)

    def test_a_noisy_low_step_does_not_hide_a_higher_one(self):
        steps = [step(1000, 1000, 5000), step(2000, 2000, 800)]
        self.assertEqual(knee_rate(steps, "p99", 1000), 2000)

    def test_nothing_met_or_nothing_measured(self):
        self.assertIsNone(knee_rate([step(1000, 1000, 5000)], "p99", 1000))
        self.assertIsNone(knee_rate([], "p99", 1000))
        self.assertIsNone(knee_rate([step(1000, None, None)], "p99", 1000))


def knee_points(srv=("reverbd-w1", "minimal")):
    """Three runs of the knee for reverbd-w1 and minimal (and a closed-50 run each)."""
    records = [closed_run(name, 1, 10000.0) for name in srv]
    records += [knee_run("reverbd-w1", i + 1, 10000.0,
                         [(5000.0, 300.0, 900.0), (a, p99, 8000.0), (9000.0, 90000.0, 99000.0)])
                for i, (a, p99) in enumerate([(9600.0, 900.0), (9800.0, 1100.0),
                                              (9700.0, 950.0)])]
    if "minimal" in srv:
        records += [knee_run("minimal", i + 1, 12000.0,
                             [(6000.0, 200.0, 400.0), (11900.0, 700.0, 20000.0),
                              (12100.0, 50000.0, 60000.0)]) for i in range(3)]
    return records, summarise(records, servers(*srv), [CLOSED, KNEE])


class SummariseKneeTest(unittest.TestCase):
    def test_rates_steps_and_ratios_over_three_runs(self):
        _, points = knee_points()
        mine = find_point(points, "knee", "reverbd-w1")
        # Runs 1 and 3 met p99 <= 1 ms at their second step (9,600 and 9,700), run 2 only at the
        # first (5,000): median 9,600.
        self.assertEqual(mine["rate_at_p99_1ms"], {"median": 9600.0, "min": 5000.0,
                                                   "max": 9700.0})
        self.assertEqual(mine["rate_at_p999_10ms"]["median"], 9700.0)
        self.assertEqual(mine["closed_max"], {"median": 10000.0, "min": 10000.0,
                                              "max": 10000.0})
        self.assertEqual([s["fraction"] for s in mine["knee"]], [0.5, 1.0, 1.2])
        self.assertEqual(mine["knee"][1]["requests_per_second"], 9700.0)
        self.assertEqual(mine["knee"][1]["latency_us"]["p99"], 950.0)
        self.assertEqual(mine["knee"][1]["rate_asked"], 10000.0)
        minimal = find_point(points, "knee", "minimal")
        self.assertEqual(minimal["rate_at_p99_1ms"]["median"], 11900.0)
        # minimal's p99.9 at 11,900 req/s is 20 ms: only its first step met 10 ms.
        self.assertEqual(minimal["rate_at_p999_10ms"]["median"], 6000.0)
        self.assertAlmostEqual(mine["ratio"]["minimal"], 9600.0 / 11900.0)
        self.assertAlmostEqual(mine["ratio_rate_at_p999_10ms"]["minimal"], 9700.0 / 6000.0)
        self.assertIsNone(mine["ratio_rate_at_p999_10ms"]["minimal_uring"])

    def test_without_minimal_the_ratios_are_none(self):
        _, points = knee_points(("reverbd-w1",))
        mine = find_point(points, "knee", "reverbd-w1")
        self.assertIsNone(mine["ratio"]["minimal"])
        self.assertIsNone(mine["ratio_rate_at_p999_10ms"]["minimal"])


class KneeReportTest(unittest.TestCase):
    def test_one_table_of_rates_and_ratios(self):
        records, points = knee_points()
        srv = servers("reverbd-w1", "minimal")
        with tempfile.TemporaryDirectory() as tmp:
            write_report(Path(tmp), copy.deepcopy(META), srv, [CLOSED, KNEE], points,
                         goals(points, srv, [CLOSED, KNEE]), [], [])
            lines = (Path(tmp) / "report.md").read_text().splitlines()
        at = lines.index(f"## knee: {KNEE.title}")
        self.assertIn("| server | closed-loop max req/s | req/s at p99 ≤ 1 ms | x minimal | "
                      "req/s at p99.9 ≤ 10 ms | x minimal | p99 µs at each step |", lines[at:])
        self.assertIn("| reverbd-w1 | 10,000 [10,000 – 10,000] | 9,600 [5,000 – 9,700] | 0.807 | "
                      "9,700 [9,600 – 9,800] | 1.62 | 300, 950, 90,000 |", lines)
        self.assertIn("| minimal | 12,000 [12,000 – 12,000] | 11,900 [11,900 – 11,900] | 1 | "
                      "6,000 [6,000 – 6,000] | 1 | 200, 700, 50,000 |", lines)


class KneeResultsTest(unittest.TestCase):
    def results(self):
        records, points = knee_points()
        srv = servers("reverbd-w1", "minimal")
        meta = copy.deepcopy(META)
        return json.loads(json.dumps(build_results(meta, srv, [CLOSED, KNEE], points,
                                                   goals(points, srv, [CLOSED, KNEE]), records,
                                                   []), default=str))

    def test_valid(self):
        self.assertEqual(validate_results(self.results()), [])

    def test_a_point_needs_one_step_per_fraction(self):
        results = self.results()
        index = next(i for i, p in enumerate(results["points"]) if p["workload"] == "knee")
        results["points"][index]["knee"].pop()
        self.assertEqual(validate_results(results),
                         [f"points[{index}].knee: expected one step per fraction"])

    def test_a_step_has_its_latency_figures(self):
        results = self.results()
        index = next(i for i, p in enumerate(results["points"]) if p["workload"] == "knee")
        del results["points"][index]["knee"][0]["latency_us"]["p999"]
        self.assertEqual(len(validate_results(results)), 1)
        self.assertTrue(validate_results(results)[0].startswith(
            f"points[{index}].knee[0].latency_us: unexpected value"))

    def test_objective_rates_are_ranges(self):
        results = self.results()
        index = next(i for i, p in enumerate(results["points"]) if p["workload"] == "knee")
        results["points"][index]["rate_at_p999_10ms"] = 5.0
        self.assertEqual(validate_results(results),
                         [f"points[{index}].rate_at_p999_10ms: not a median/min/max range"])


class KneePlotTest(unittest.TestCase):
    def test_a_line_per_measured_step(self):
        _, points = knee_points()
        rows = knee_rows(find_point(points, "knee", "reverbd-w1"))
        self.assertEqual(rows, ["5000.0 300.0 0.5", "9700.0 950.0 1.0", "9000.0 90000.0 1.2"])
        self.assertEqual(knee_rows({"knee": [{"fraction": 0.5, "requests_per_second": None,
                                              "latency_us": {"p99": None}}]}), [])


class KneeWorkloadTest(unittest.TestCase):
    def test_the_knee_follows_its_closed_loop_workload(self):
        for workloads in (full_workloads(), quick_workloads()):
            names = [w.name for w in workloads]
            knee = workloads[names.index("knee")]
            base = knee_base(workloads, knee)
            self.assertEqual(base.name, "closed-50")
            self.assertLess(names.index(base.name), names.index("knee"))
        self.assertEqual(len(next(w for w in quick_workloads() if w.kind == "knee").fractions), 2)

    def test_no_base_without_a_closed_loop_workload_at_its_connections(self):
        self.assertIsNone(knee_base([KNEE], KNEE))


if __name__ == "__main__":
    unittest.main()
