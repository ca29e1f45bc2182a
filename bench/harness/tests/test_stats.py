"""stats.py: median [min, max] over runs, ratios to minimal and threaded, and the goals."""

import unittest

from harness.stats import find_point, goals, median_min_max, summarise
from harness.workloads import Workload

from .fixtures import CLOSED, IDLE, closed_run, idle_run, servers


class MedianMinMaxTest(unittest.TestCase):
    def test_odd_count(self):
        self.assertEqual(median_min_max([3.0, 1.0, 2.0]), {"median": 2.0, "min": 1.0, "max": 3.0})

    def test_even_count_takes_the_mean_of_the_middle_two(self):
        self.assertEqual(median_min_max([4, 1, 2, 3]), {"median": 2.5, "min": 1, "max": 4})

    def test_single_run(self):
        self.assertEqual(median_min_max([7.5]), {"median": 7.5, "min": 7.5, "max": 7.5})

    def test_missing_figures_are_dropped(self):
        self.assertEqual(median_min_max([None, 5, None, 1, 3]), {"median": 3, "min": 1, "max": 5})

    def test_no_figure_at_all_is_none(self):
        self.assertIsNone(median_min_max([]))
        self.assertIsNone(median_min_max([None, None]))

    def test_zero_is_a_figure(self):
        self.assertEqual(median_min_max([0, 0, 3]), {"median": 0, "min": 0, "max": 3})


class SummariseTest(unittest.TestCase):
    def test_three_runs_median_min_max_and_ratios(self):
        records = [closed_run("reverbd-w1", i + 1, rps, p99=p99)
                   for i, (rps, p99) in enumerate([(1100.0, 90.0), (1300.0, 110.0),
                                                   (1200.0, 100.0)])]
        records += [closed_run("threaded", i + 1, rps, p99=200.0)
                    for i, rps in enumerate([900.0, 800.0, 1000.0])]
        records += [closed_run("minimal", i + 1, rps, p99=50.0)
                    for i, rps in enumerate([1500.0, 1600.0, 1400.0])]
        points = summarise(records, servers("reverbd-w1", "threaded", "minimal"), [CLOSED])
        self.assertEqual([(p["workload"], p["server"], p["runs"]) for p in points],
                         [("closed-50", "reverbd-w1", 3), ("closed-50", "threaded", 3),
                          ("closed-50", "minimal", 3)])
        mine = find_point(points, "closed-50", "reverbd-w1")
        self.assertEqual(mine["requests_per_second"],
                         {"median": 1200.0, "min": 1100.0, "max": 1300.0})
        # Ratios are of medians from the same results: 1200 / 1500 and 1200 / 900.
        self.assertAlmostEqual(mine["ratio"]["minimal"], 1200.0 / 1500.0)
        self.assertAlmostEqual(mine["ratio"]["threaded"], 1200.0 / 900.0)
        self.assertAlmostEqual(mine["p99_ratio"]["minimal"], 100.0 / 50.0)
        self.assertAlmostEqual(mine["p99_ratio"]["threaded"], 100.0 / 200.0)
        self.assertEqual(mine["latency_us"]["p99"], 100.0)
        self.assertEqual(mine["latency_us"]["max"], 400.0)
        self.assertEqual(mine["server_cpu_cores"], {"median": 0.5, "min": 0.5, "max": 0.5})
        # A baseline's ratio to itself is 1.
        self.assertEqual(find_point(points, "closed-50", "minimal")["ratio"]["minimal"], 1.0)

    def test_single_run(self):
        records = [closed_run("reverbd-w1", 1, 2000.0), closed_run("minimal", 1, 1000.0),
                   closed_run("threaded", 1, 4000.0)]
        points = summarise(records, servers("reverbd-w1", "threaded", "minimal"), [CLOSED])
        mine = find_point(points, "closed-50", "reverbd-w1")
        self.assertEqual(mine["runs"], 1)
        self.assertEqual(mine["requests_per_second"],
                         {"median": 2000.0, "min": 2000.0, "max": 2000.0})
        self.assertEqual(mine["ratio"], {"minimal": 2.0, "minimal_uring": None, "threaded": 0.5})

    def test_missing_baseline_gives_no_ratio(self):
        records = [closed_run("reverbd-w1", 1, 2000.0), closed_run("threaded", 1, 1000.0)]
        points = summarise(records, servers("reverbd-w1", "threaded"), [CLOSED])
        mine = find_point(points, "closed-50", "reverbd-w1")
        self.assertEqual(mine["ratio"], {"minimal": None, "minimal_uring": None, "threaded": 2.0})
        self.assertEqual(mine["p99_ratio"],
                         {"minimal": None, "minimal_uring": None, "threaded": 1.0})

    def test_ratios_to_minimal_uring(self):
        records = [closed_run("reverbd-w1-io_uring", 1, 3000.0, p99=90.0),
                   closed_run("minimal", 1, 2000.0, p99=100.0),
                   closed_run("minimal_uring", 1, 4000.0, p99=60.0),
                   closed_run("threaded", 1, 1000.0, p99=300.0)]
        srv = servers("reverbd-w1-io_uring", "threaded", "minimal", "minimal_uring")
        points = summarise(records, srv, [CLOSED])
        mine = find_point(points, "closed-50", "reverbd-w1-io_uring")
        self.assertEqual(mine["ratio"], {"minimal": 1.5, "minimal_uring": 0.75, "threaded": 3.0})
        self.assertEqual(mine["p99_ratio"], {"minimal": 0.9, "minimal_uring": 1.5, "threaded": 0.3})
        # Every point gets the ratio, the baselines too: minimal_uring to itself is 1.
        self.assertEqual(find_point(points, "closed-50", "minimal_uring")["ratio"]["minimal_uring"],
                         1.0)
        self.assertEqual(find_point(points, "closed-50", "minimal")["ratio"]["minimal_uring"], 0.5)

    def test_missing_minimal_uring_leaves_the_other_ratios(self):
        # A build without liburing: minimal_uring's ratios are None, the rest as before.
        records = [closed_run("reverbd-w1", 1, 3000.0), closed_run("minimal", 1, 2000.0),
                   closed_run("threaded", 1, 1000.0)]
        points = summarise(records, servers("reverbd-w1", "threaded", "minimal"), [CLOSED])
        for p in points:
            self.assertIsNone(p["ratio"]["minimal_uring"], p["server"])
            self.assertIsNone(p["p99_ratio"]["minimal_uring"], p["server"])
        self.assertEqual(find_point(points, "closed-50", "reverbd-w1")["ratio"]["minimal"], 1.5)

    def test_baseline_without_figures_gives_no_ratio(self):
        # minimal is in the matrix but every run of it failed before reporting a figure.
        records = [closed_run("reverbd-w1", 1, 2000.0),
                   closed_run("minimal", 1, None, latency_us=None)]
        points = summarise(records, servers("reverbd-w1", "minimal"), [CLOSED])
        self.assertIsNone(find_point(points, "closed-50", "minimal")["requests_per_second"])
        self.assertIsNone(find_point(points, "closed-50", "reverbd-w1")["ratio"]["minimal"])
        self.assertIsNone(find_point(points, "closed-50", "reverbd-w1")["p99_ratio"]["minimal"])

    def test_zero_baseline_gives_no_ratio_not_a_division_error(self):
        records = [closed_run("reverbd-w1", 1, 2000.0), closed_run("minimal", 1, 0.0, p99=0.0)]
        points = summarise(records, servers("reverbd-w1", "minimal"), [CLOSED])
        mine = find_point(points, "closed-50", "reverbd-w1")
        self.assertIsNone(mine["ratio"]["minimal"])
        self.assertIsNone(mine["p99_ratio"]["minimal"])

    def test_zero_figure_against_a_baseline_is_a_zero_ratio(self):
        records = [closed_run("reverbd-w1", 1, 0.0), closed_run("minimal", 1, 1000.0)]
        points = summarise(records, servers("reverbd-w1", "minimal"), [CLOSED])
        self.assertEqual(find_point(points, "closed-50", "reverbd-w1")["ratio"]["minimal"], 0.0)

    def test_server_without_runs(self):
        points = summarise([closed_run("minimal", 1, 1000.0)],
                           servers("reverbd-w1", "minimal"), [CLOSED])
        mine = find_point(points, "closed-50", "reverbd-w1")
        self.assertEqual(mine["runs"], 0)
        self.assertIsNone(mine["requests_per_second"])
        self.assertEqual(mine["ratio"], {"minimal": None, "minimal_uring": None, "threaded": None})
        self.assertEqual(set(mine["latency_us"].values()), {None})

    def test_mismatches_and_errors_add_up_over_runs(self):
        records = [closed_run("minimal", 1, 1000.0, mismatches=2, errors=1),
                   closed_run("minimal", 2, 1000.0, mismatches=None, errors=4)]
        point = summarise(records, servers("minimal"), [CLOSED])[0]
        self.assertEqual((point["mismatches"], point["errors"]), (2, 5))

    def test_find_point_misses(self):
        self.assertIsNone(find_point([], "closed-50", "minimal"))


class GoalsTest(unittest.TestCase):
    def test_goals_against_minimal(self):
        records = [closed_run("reverbd-w1", 1, 1500.0, p99=140.0),
                   closed_run("minimal", 1, 1000.0, p99=100.0),
                   idle_run("reverbd-w1", 1, 5000.0), idle_run("minimal", 1, 3000.0)]
        srv = servers("reverbd-w1", "minimal")
        rows = goals(summarise(records, srv, [CLOSED, IDLE]), srv, [CLOSED, IDLE])
        self.assertEqual([(g["server"], g["goal"], g["measured"], g["met"], g["unit"]) for g in rows],
                         [("reverbd-w1", "closed-50: at least 1.0x minimal", 1.5, True, "x"),
                          ("reverbd-w1", "closed-50: p99 at most 1.5x minimal's", 1.4, True, "x"),
                          ("reverbd-w1", "idle-200: at most 4096 B RSS per connection", 5000.0,
                           False, "B"),
                          # No minimal_uring in this matrix: its goal is unmeasured, not met.
                          ("reverbd-w1", "closed-50, best reverbd variant: at least 1.0x minimal",
                           1.5, True, "x"),
                          ("reverbd-w1",
                           "closed-50, best reverbd variant: at least 0.9x minimal_uring", None,
                           False, "x")])

    def test_no_baseline_means_goal_not_met(self):
        srv = servers("reverbd-w1")
        rows = goals(summarise([closed_run("reverbd-w1", 1, 1500.0)], srv, [CLOSED]), srv, [CLOSED])
        self.assertEqual([(g["measured"], g["met"]) for g in rows], [(None, False)] * 4)


CLOSED_1000 = Workload("closed-1000", "closed", 1000, "chunk", 17, "requests_per_second", "req/s")


def best_rows(rows):
    """The io_uring goals' rows (issue 10): (server, goal, measured, met)."""
    return [(g["server"], g["goal"], g["measured"], g["met"]) for g in rows
            if "best reverbd variant" in g["goal"]]


class BestVariantGoalsTest(unittest.TestCase):
    """closed-50: reverbd's best variant at least 1.0x minimal and 0.9x minimal_uring; closed-1000:
    1.1x minimal and 1.0x minimal_uring."""

    def summarise(self, rps_by_workload):
        srv = servers("reverbd-w1", "reverbd-w2", "reverbd-w1-io_uring", "reverbd-w2-io_uring",
                      "threaded", "minimal", "minimal_uring")
        wls = [CLOSED, CLOSED_1000]
        records = [closed_run(name, 1, rps, workload=wl.name)
                   for wl in wls for name, rps in rps_by_workload[wl.name].items()]
        return goals(summarise(records, srv, wls), srv, wls)

    def test_the_best_backend_and_worker_count_is_judged(self):
        rows = self.summarise({
            "closed-50": {"reverbd-w1": 900.0, "reverbd-w2": 950.0, "reverbd-w1-io_uring": 1000.0,
                          "reverbd-w2-io_uring": 1080.0, "threaded": 700.0, "minimal": 1000.0,
                          "minimal_uring": 1200.0},
            "closed-1000": {"reverbd-w1": 1200.0, "reverbd-w2": 1500.0,
                            "reverbd-w1-io_uring": 1400.0, "reverbd-w2-io_uring": 1450.0,
                            "threaded": 800.0, "minimal": 1400.0, "minimal_uring": 1600.0}})
        self.assertEqual(best_rows(rows), [
            ("reverbd-w2-io_uring", "closed-50, best reverbd variant: at least 1.0x minimal",
             1.08, True),
            ("reverbd-w2-io_uring", "closed-50, best reverbd variant: at least 0.9x minimal_uring",
             0.9, True),
            # 1500 / 1400 = 1.07: short of 1.1x minimal; 1500 / 1600 = 0.94: short of 1.0x.
            ("reverbd-w2", "closed-1000, best reverbd variant: at least 1.1x minimal",
             1500.0 / 1400.0, False),
            ("reverbd-w2", "closed-1000, best reverbd variant: at least 1.0x minimal_uring",
             1500.0 / 1600.0, False)])

    def test_goals_come_after_the_per_variant_rows(self):
        rows = self.summarise({"closed-50": {"reverbd-w1": 1000.0, "minimal": 1000.0,
                                             "minimal_uring": 1000.0},
                               "closed-1000": {"reverbd-w1": 1000.0, "minimal": 1000.0,
                                               "minimal_uring": 1000.0}})
        firsts = [i for i, g in enumerate(rows) if "best reverbd variant" in g["goal"]]
        self.assertEqual(firsts, list(range(len(rows) - 4, len(rows))))
        # A variant with no runs is never the best; exactly 1.0x meets an "at least 1.0x".
        self.assertEqual([(g[0], g[3]) for g in best_rows(rows)],
                         [("reverbd-w1", True), ("reverbd-w1", True), ("reverbd-w1", False),
                          ("reverbd-w1", True)])

    def test_without_minimal_uring_its_goals_are_unmeasured(self):
        srv = servers("reverbd-w1", "reverbd-w2", "minimal")
        records = [closed_run("reverbd-w1", 1, 1100.0), closed_run("reverbd-w2", 1, 1200.0),
                   closed_run("minimal", 1, 1000.0)]
        rows = goals(summarise(records, srv, [CLOSED]), srv, [CLOSED])
        self.assertEqual(best_rows(rows), [
            ("reverbd-w2", "closed-50, best reverbd variant: at least 1.0x minimal", 1.2, True),
            ("reverbd-w2", "closed-50, best reverbd variant: at least 0.9x minimal_uring", None,
             False)])

    def test_no_reverbd_figure_names_no_variant(self):
        srv = servers("reverbd-w1", "minimal", "minimal_uring")
        records = [closed_run("reverbd-w1", 1, None, latency_us=None),
                   closed_run("minimal", 1, 1000.0), closed_run("minimal_uring", 1, 1000.0)]
        rows = goals(summarise(records, srv, [CLOSED]), srv, [CLOSED])
        self.assertEqual([(g[0], g[2], g[3]) for g in best_rows(rows)],
                         [("reverbd", None, False), ("reverbd", None, False)])

    def test_only_for_the_closed_50_and_1000_workloads(self):
        srv = servers("reverbd-w1", "minimal", "minimal_uring")
        records = [idle_run(name, 1, 1000.0) for name in ("reverbd-w1", "minimal", "minimal_uring")]
        self.assertEqual(best_rows(goals(summarise(records, srv, [IDLE]), srv, [IDLE])), [])
        # Nor without a reverbd row (a --servers of baselines only): no goals at all.
        srv = servers("minimal", "minimal_uring")
        records = [closed_run(name, 1, 1000.0) for name in ("minimal", "minimal_uring")]
        self.assertEqual(goals(summarise(records, srv, [CLOSED]), srv, [CLOSED]), [])


if __name__ == "__main__":
    unittest.main()
