"""reverbd behind HAProxy (scripts/cluster, deploy/haproxy/reverb.cfg), on loopback.

- The article's client and reverb-load work through HAProxy, with 0 mismatches; every backend
  required and got a PROXY v2 header on every connection, health checks included.
- SIGTERM one backend under load: HAProxy marks it DOWN and sends it no new connection, and every
  reply it computed reaches its client (0 lost replies).
- kill -9 one backend under load: only the connections it held fail, and new connections succeed
  at once (HAProxy retries a refused connect on another server), well within the health-check
  interval (1 s). The figures are printed as TAP diagnostics.

Each test starts its own cluster in a private directory with free ports, and ends it (by PID)
whatever happens.
"""

import os
import sys
import time
import unittest

from support import (HAPROXY, Cluster, Load, article_client, missing_binaries,
                     split_health_checks, stopped_counts, wait_exit)

CHECK_INTERVAL = 1.0  # deploy/haproxy/reverb.cfg: inter 1s fall 2 rise 2


def note(text):
    print(f"# {text}", file=sys.stderr)


class ClusterTestCase(unittest.TestCase):
    def setUp(self):
        why = missing_binaries()
        if why:
            self.skipTest(why)
        if not HAPROXY or not os.access(HAPROXY, os.X_OK):
            self.skipTest("haproxy is not installed (Debian's haproxy; scripts/setup installs it)")
        self.loads = []
        self.cluster = None

    def tearDown(self):
        for load in self.loads:
            load.child.stop()
        if self.cluster:
            self.cluster.down()

    def start(self, count):
        self.cluster = Cluster(count)
        return self.cluster

    def load(self, args):
        load = Load(self.cluster.target, ["--warmup", "0", *args])
        self.loads.append(load)
        return load

    def served(self, i, extra_bytes=0):
        """Client requests backend i answered (its health checks taken out), from its exit line."""
        counts = stopped_counts(self.cluster.log(i))
        self.assertIsNotNone(counts, self.cluster.log(i))
        return split_health_checks(counts[1], counts[3], 16, extra_bytes)[0]


class ThroughHAProxyTest(ClusterTestCase):
    def test_article_client_and_reverb_load_through_haproxy(self):
        cluster = self.start(2)
        host, port = cluster.target.split(":")
        self.assertEqual(article_client(host, int(port)), b".sajniN gnidoC oG")
        code, result = self.load(["--no-progress", "--connections", "8", "--requests", "20000"]).result()
        self.assertEqual(code, 0)
        self.assertEqual(result["mismatches"], 0)
        self.assertEqual(result["errors"], 0)
        self.assertEqual(result["requests"], 20000)
        code, churn = self.load(["--no-progress", "--mode", "connect", "--connections", "4",
                                 "--requests", "2000"]).result()
        self.assertEqual(code, 0)
        self.assertEqual(churn["mismatches"], 0)
        self.assertEqual(churn["errors"], 0)
        # Roundrobin: both backends served.
        stats = cluster.stats()
        self.assertGreater(stats["rv1"]["stot"], 0, stats)
        self.assertGreater(stats["rv2"]["stot"], 0, stats)
        cluster.down()
        # Which backend answered the article's 17-byte request: the one whose reply bytes are not
        # a multiple of 16-byte requests plus 19-byte checks without it.
        total = 0
        for i in (1, 2):
            log = cluster.log(i)
            try:
                total += self.served(i)
            except AssertionError:
                total += self.served(i, extra_bytes=1)
            # Every connection, health checks included, came with a valid PROXY v2 header.
            self.assertIn("0 connections closed without a valid one", log)
        # Every request answered once: the article's, and reverb-load's two runs (their preflight
        # connects send none).
        self.assertEqual(total, 1 + 20000 + 2000)


class FailoverTest(ClusterTestCase):
    LOAD = ["--rate", "6000", "--connections", "12", "--requests", "24000"]

    def test_sigterm_one_backend_under_load(self):
        cluster = self.start(3)
        load = self.load(self.LOAD)
        self.assertTrue(load.wait_progress(), load.child.text())
        before = cluster.stats()["rv2"]
        os.kill(cluster.pid(2), 15)
        went_down = cluster.wait_status("rv2", "DOWN", 4 * CHECK_INTERVAL + 5)
        self.assertIsNotNone(went_down, cluster.stats())
        sessions_at_down = cluster.stats()["rv2"]["stot"]
        code, result = load.result()
        after = cluster.stats()["rv2"]
        cluster.down()
        served = [self.served(i) for i in (1, 2, 3)]
        answered = sum(served)
        received = result["requests_all"]
        note(f"SIGTERM rv2: it held {before['scur']} sessions; DOWN after {went_down:.2f} s; "
             f"served {served}; replies received {received}, lost {answered - received}; "
             f"errors {result['errors_by_cause']}")
        self.assertEqual(result["mismatches"], 0)
        # Every reply the drained backend computed reached its client.
        self.assertEqual(answered - received, 0)
        # No new connection went to it once DOWN.
        self.assertEqual(after["stot"], sessions_at_down)
        # Only its connections saw their server go (an end with a request owed); new connections
        # all succeeded: no connect was refused or reset.
        self.assertEqual(result["errors_by_cause"]["refused"], 0)
        self.assertLessEqual(result["errors"], before["scur"] + 1, result["errors_by_cause"])
        self.assertGreater(served[1], 0)

    def test_kill_9_one_backend_under_load(self):
        cluster = self.start(3)
        load = self.load(self.LOAD)
        self.assertTrue(load.wait_progress(), load.child.text())
        held = cluster.stats()["rv2"]["scur"]
        killed_at = time.monotonic()
        os.kill(cluster.pid(2), 9)
        # A connection HAProxy made to it in the instant before it died is one of its own and
        # fails with it; new connections are those made after it is gone.
        self.assertTrue(wait_exit(cluster.pid(2)))
        gone = time.monotonic() - killed_at
        # New connections: the first one after the kill, and how long until one succeeded.
        host, port = cluster.target.split(":")
        failures = []
        first_success = None
        while time.monotonic() - killed_at < 3 * CHECK_INTERVAL:
            try:
                reply = article_client(host, int(port), timeout=2)
                if reply == b".sajniN gnidoC oG":
                    first_success = time.monotonic() - killed_at
                    break
                failures.append(repr(reply))
            except OSError as e:
                failures.append(repr(e))
        went_down = cluster.wait_status("rv2", "DOWN", 4 * CHECK_INTERVAL + 5)
        code, result = load.result()
        note(f"kill -9 rv2: it held {held} sessions; gone {gone:.3f} s after the signal; "
             f"first new connection answered after "
             f"{first_success if first_success is None else round(first_success, 3)} s "
             f"({len(failures)} failed before: {failures}); DOWN after "
             f"{went_down if went_down is None else round(went_down, 2)} s; reverb-load "
             f"errors {result['errors_by_cause']}, mismatches {result['mismatches']}")
        # A new connection succeeds well within one health-check interval, long before HAProxy
        # marks the backend DOWN. One may still fail first: a killed process's io_uring keeps its
        # listening socket open in the kernel until the ring's teardown (a kernel work item)
        # cancels the multishot accept, so for a few milliseconds after the exit a connect can
        # still complete to it and then be reset (HAProxy logs it "SD": connected, then closed).
        self.assertIsNotNone(first_success)
        self.assertLess(first_success, CHECK_INTERVAL)
        self.assertLessEqual(len(failures), 2, failures)
        self.assertIsNotNone(went_down)
        self.assertEqual(result["mismatches"], 0)
        # Only the connections the killed backend held failed (each once, then replaced).
        self.assertGreater(result["errors"], 0)
        self.assertLessEqual(result["errors"], held + 1, result["errors_by_cause"])
        self.assertEqual(result["errors_by_cause"]["refused"], 0)


if __name__ == "__main__":
    unittest.main()
