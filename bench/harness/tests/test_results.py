"""results.py: the results.json dict the harness builds has what report.py and plots.py read."""

import copy
import json
import unittest

from harness.results import build_results, validate_results
from harness.stats import goals, summarise

from .fixtures import CLOSED, IDLE, META, closed_run, idle_run, servers


def sample_results(baselines=("threaded", "minimal", "minimal_uring")):
    """Results as cli.main builds them, from fixed runs through the harness's own functions."""
    srv = servers("reverbd-w1", *baselines)
    rps = {"reverbd-w1": 1200.0, "threaded": 900.0, "minimal": 1500.0, "minimal_uring": 1600.0}
    records = [closed_run(s.name, 1, rps[s.name]) for s in srv]
    records += [idle_run(s.name, 1, 2000.0) for s in srv]
    points = summarise(records, srv, [CLOSED, IDLE])
    micro = [{"binary": "bench_reverse", "name": "BM_Reverse/64", "items_per_second": 2.5e7,
              "bytes_per_second": None, "real_time": 40.0, "time_unit": "ns", "cv": "—",
              "label": ""}]
    meta = copy.deepcopy(META)
    meta["ready_lines"] = {s.name: ["x: listening on 127.0.0.1:1"] for s in srv}
    return build_results(meta, srv, [CLOSED, IDLE], points, goals(points, srv, [CLOSED, IDLE]),
                         records, micro)


class ValidateResultsTest(unittest.TestCase):
    def test_harness_built_results_are_valid(self):
        self.assertEqual(validate_results(sample_results()), [])

    def test_valid_after_a_json_round_trip(self):
        # What a later reader of results.json sees: tuples become lists, Paths were strings.
        text = json.dumps(sample_results(), indent=2, default=str)
        self.assertEqual(validate_results(json.loads(text)), [])

    def test_top_level_keys(self):
        self.assertEqual(set(sample_results()),
                         {"meta", "servers", "workloads", "points", "goals", "runs", "micro"})

    def test_servers_and_workloads_are_plain_data(self):
        results = sample_results()
        self.assertEqual(results["servers"][0], {"name": "reverbd-w1", "binary": "reverbd",
                                                 "args": ["--workers", "1", "--unit", "byte"],
                                                 "family": "reverbd"})
        self.assertEqual(results["workloads"][1]["metric"], "rss_per_connection")
        self.assertIs(results["workloads"][1]["higher_is_better"], False)

    def test_missing_meta_key(self):
        results = sample_results()
        del results["meta"]["runs"]
        self.assertEqual(validate_results(results), ["meta.runs: missing"])

    def test_wrong_type(self):
        results = sample_results()
        results["meta"]["nproc"] = "2"
        self.assertEqual(validate_results(results), ["meta.nproc: unexpected value '2'"])

    def test_point_without_its_metric(self):
        results = sample_results()
        del results["points"][0]["requests_per_second"]
        self.assertEqual(validate_results(results), ["points[0].requests_per_second: missing"])

    def test_point_range_must_be_median_min_max(self):
        results = sample_results()
        results["points"][0]["server_cpu_cores"] = {"median": 1.0}
        self.assertEqual(validate_results(results),
                         ["points[0].server_cpu_cores: not a median/min/max range"])

    def test_point_ratios_name_every_baseline(self):
        results = sample_results()
        results["points"][0]["ratio"] = {"minimal": 0.8, "threaded": 1.3}
        self.assertEqual(validate_results(results),
                         ["points[0].ratio: expected minimal, minimal_uring, threaded "
                          "(numbers or null)"])

    def test_minimal_uring_ratio_is_a_number(self):
        results = sample_results()
        self.assertAlmostEqual(results["points"][0]["ratio"]["minimal_uring"], 1200.0 / 1600.0)
        results["points"][0]["p99_ratio"]["minimal_uring"] = "0.9"
        self.assertEqual(validate_results(results),
                         ["points[0].p99_ratio: expected minimal, minimal_uring, threaded "
                          "(numbers or null)"])

    def test_without_minimal_uring_its_ratios_are_null_and_valid(self):
        # A build without liburing: no minimal_uring row, null ratios to it, still a valid file.
        results = json.loads(json.dumps(sample_results(("threaded", "minimal")), default=str))
        self.assertEqual(validate_results(results), [])
        self.assertNotIn("minimal_uring", [s["name"] for s in results["servers"]])
        self.assertEqual({p["ratio"]["minimal_uring"] for p in results["points"]}, {None})
        self.assertEqual({p["p99_ratio"]["minimal_uring"] for p in results["points"]}, {None})

    def test_point_for_an_unknown_server(self):
        results = sample_results()
        results["points"][0]["server"] = "reverbd-w9"
        self.assertEqual(validate_results(results),
                         ["points[0].server: 'reverbd-w9' is not in servers"])

    def test_missing_list(self):
        results = sample_results()
        del results["goals"]
        self.assertEqual(validate_results(results), ["goals: missing or not a list"])

    def test_not_a_dict(self):
        self.assertEqual(validate_results([]), ["results: not an object"])


if __name__ == "__main__":
    unittest.main()
