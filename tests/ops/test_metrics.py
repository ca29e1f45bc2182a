"""The metrics endpoint (--metrics-listen): scraped with curl, checked with promtool, and the
health and readiness answers, before and during a drain."""

import signal
import socket
import subprocess
import threading
import unittest

from ops_support import (Reverbd, article_client, http_get, parse_metrics, reverbd_path, tool,
                         wait_until)

# Every family docs/OPERATIONS.md promises ("Metrics").
FAMILIES = [
    "reverb_connections_current", "reverb_connections_accepted_total",
    "reverb_connections_closed_total", "reverb_requests_total", "reverb_received_bytes_total",
    "reverb_sent_bytes_total", "reverb_protocol_errors_total", "reverb_job_queue_depth",
    "reverb_worker_busy_seconds_total", "reverb_request_service_seconds",
    "reverb_backend_info", "reverb_build_info", "reverb_log_messages_dropped_total",
    "reverb_log_messages_suppressed_total", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
    "reverb_connections_rejected_total", "reverb_buffered_bytes", "reverb_max_connections",
    "reverb_max_buffered_pauses_total",
]


class MetricsTest(unittest.TestCase):
    def start(self, *args):
        server = Reverbd([reverbd_path(self), "--workers", "2", "--metrics-listen", "127.0.0.1:0",
                          *args])
        self.addCleanup(server.close)
        self.assertIsNotNone(server.metrics, "the ready line names no metrics= address")
        return server

    def curl(self, server, path="/metrics"):
        curl = tool(self, "curl", "curl")
        out = subprocess.run([curl, "-sS", "--max-time", "10", f"http://{server.metrics}{path}"],
                             capture_output=True, text=True, timeout=20, check=False)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_curl_scrape_passes_promtool_and_counts_what_was_sent(self):
        promtool = tool(self, "promtool", "prometheus")
        server = self.start()
        sent = 25
        for _ in range(sent):
            self.assertEqual(article_client(server.address), b".sajniN gnidoC oG")

        # Workers add their counts when a batch ends: wait for the last one.
        text = wait_until(lambda: (lambda t: t if parse_metrics(t).get("reverb_requests_total")
                                   == sent else None)(self.curl(server)), 10)
        self.assertTrue(text, f"reverb_requests_total never reached {sent}")
        check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30, check=False)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(check.stdout + check.stderr, "", "promtool has remarks")

        samples = parse_metrics(text)
        for family in FAMILIES:
            self.assertIn(f"# TYPE {family} ", text, family)
        self.assertEqual(samples["reverb_connections_accepted_total"], sent)
        # Every article client closed its side: each close is an eof, and none was rejected.
        self.assertEqual(samples.get('reverb_connections_closed_total{reason="eof"}', 0)
                         + samples["reverb_connections_current"], sent)
        self.assertEqual(samples["reverb_connections_rejected_total"], 0)
        self.assertEqual(samples["reverb_received_bytes_total"], sent * 17)
        self.assertEqual(samples["reverb_sent_bytes_total"], sent * 17)
        # Every request is one observation of the service-time histogram.
        self.assertEqual(samples["reverb_request_service_seconds_count"], sent)
        self.assertEqual(samples['reverb_request_service_seconds_bucket{le="+Inf"}'], sent)
        self.assertGreater(samples["reverb_request_service_seconds_sum"], 0)
        self.assertLess(samples["reverb_request_service_seconds_sum"], 10)
        busy = sum(v for k, v in samples.items()
                   if k.startswith("reverb_worker_busy_seconds_total{"))
        self.assertGreater(busy, 0)
        self.assertTrue(any(k.startswith("reverb_backend_info{backend=") for k in samples))
        self.assertGreater(samples["process_open_fds"], 3)
        self.assertGreater(samples["process_resident_memory_bytes"], 1e6)

    def test_health_ready_and_503_during_a_drain(self):
        server = self.start("--drain-timeout", "20")
        self.assertEqual(http_get(server.metrics, "/healthz"), (200, "ok\n"))
        self.assertEqual(http_get(server.metrics, "/readyz"), (200, "ready\n"))
        self.assertEqual(http_get(server.metrics, "/nothing")[0], 404)

        # A client that sends and never reads keeps replies unsent, so the drain cannot end
        # until it goes: the window in which readiness must say 503.
        slow = socket.create_connection(server.address, timeout=10)
        slow.setblocking(False)
        sent = 0
        chunk = b"x" * 65536

        def filled():
            nonlocal sent
            try:
                while True:
                    sent += slow.send(chunk)
            except BlockingIOError:
                pass
            return False

        wait_until(lambda: filled() or sent > 8 << 20, 10)
        server.signal(signal.SIGTERM)
        self.assertTrue(server.wait_for("draining", 10), server.stderr())
        status = wait_until(lambda: http_get(server.metrics, "/readyz")[0] == 503, 10)
        self.assertTrue(status, "/readyz never said 503 during the drain")
        self.assertEqual(http_get(server.metrics, "/readyz"), (503, "draining\n"))
        self.assertEqual(http_get(server.metrics, "/healthz"), (200, "ok\n"))
        self.assertEqual(parse_metrics(self.curl(server))["reverb_draining"], 1)
        slow.close()
        # The drain ends once the slow reader is gone (a second SIGTERM would exit 1).
        self.assertEqual(server.process.wait(20), 0, server.stderr())

    def test_off_by_default_and_request_timing_off_with_it(self):
        server = Reverbd([reverbd_path(self), "--workers", "1"])
        self.addCleanup(server.close)
        self.assertIsNone(server.metrics)
        self.assertNotIn("metrics=", server.stderr())
        self.assertEqual(server.stop(), 0)

    def test_concurrent_scrapes_while_serving(self):
        server = self.start()
        errors = []

        def scrape():
            for _ in range(20):
                status, body = http_get(server.metrics, "/metrics")
                if status != 200 or "reverb_requests_total" not in body:
                    errors.append(status)

        threads = [threading.Thread(target=scrape) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(50):
            self.assertEqual(article_client(server.address), b".sajniN gnidoC oG")
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
