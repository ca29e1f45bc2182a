"""The cluster workload's pure parts: which backend counts run, and the table of cluster.md."""

import unittest

from harness.cluster import backend_counts, cluster_table


def record(backends, path, kind, value, p99, cpu=None):
    metric = "requests_per_second" if kind == "closed" else "connections_per_second"
    rec = {"backends": backends, "path": path, "kind": kind, metric: value, "p99_us": p99,
           "failures": []}
    if cpu is not None:
        rec["haproxy_cpu_cores"] = cpu
    return rec


class ClusterTableTest(unittest.TestCase):
    def test_backend_counts(self):
        self.assertEqual(backend_counts(False), [1, 2, 4])
        self.assertEqual(backend_counts(True), [1, 2])

    def test_haproxy_beside_direct_with_the_ratio(self):
        table = cluster_table([
            record(2, "haproxy", "closed", 30000, 2100, 0.61),
            record(2, "direct", "closed", 60000, 900),
            record(2, "haproxy", "churn", 4000, 8000, 0.4),
            record(2, "direct", "churn", 8000, 3000),
        ])
        lines = table.splitlines()
        self.assertEqual(len(lines), 4)
        self.assertIn("| 2 | closed (req/s) | 30,000 | 60,000 | 0.50x | 2,100 | 900 | 0.61 |",
                      lines)
        self.assertIn("| 2 | churn (conn/s) | 4,000 | 8,000 | 0.50x | 8,000 | 3,000 | 0.40 |",
                      lines)

    def test_a_missing_figure_reads_as_a_dash(self):
        table = cluster_table([record(1, "haproxy", "closed", None, None)])
        self.assertIn("| 1 | closed (req/s) | — | — | — | — | — | — |", table)


if __name__ == "__main__":
    unittest.main()
