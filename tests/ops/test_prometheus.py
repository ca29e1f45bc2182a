"""The real Prometheus server (Debian package prometheus) scrapes reverbd on loopback; its HTTP API
must then say up == 1 and report the request counter equal to what the test sent. Bounded: a
scrape every second, and 20 s at most for both answers."""

import json
import os
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from ops_support import Reverbd, article_client, free_port, http_get, reverbd_path, tool

SENT = 37


class PrometheusTest(unittest.TestCase):
    def query(self, web, expression):
        """The value of an instant query as a float, or None when the result is empty."""
        status, body = http_get(web, "/api/v1/query?query=" + urllib.parse.quote(expression))
        if status != 200:
            return None
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def start_prometheus(self, binary, config, storage, log):
        """Prometheus on a free port; a port taken meanwhile (the process exits) is tried again."""
        for _ in range(5):
            web = f"127.0.0.1:{free_port()}"
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
                 f"--web.listen-address={web}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if http_get(web, "/-/ready", timeout=2)[0] == 200:
                        return process, web
                except OSError:
                    pass
                time.sleep(0.1)
            if process.poll() is None:
                process.kill()
            process.wait()
        self.fail("prometheus did not start")

    def test_prometheus_scrapes_reverbd(self):
        binary = tool(self, "prometheus", "prometheus")
        server = Reverbd([reverbd_path(self), "--workers", "2", "--metrics-listen", "127.0.0.1:0"])
        self.addCleanup(server.close)
        for _ in range(SENT):
            self.assertEqual(article_client(server.address), b".sajniN gnidoC oG")

        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        config = os.path.join(tmp.name, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: reverbd\n    static_configs:\n"
                    f"      - targets: ['{server.metrics}']\n")
        log = open(os.path.join(tmp.name, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        started = time.monotonic()
        prometheus, web = self.start_prometheus(binary, config, os.path.join(tmp.name, "data"), log)

        def stop():
            prometheus.send_signal(signal.SIGTERM)
            try:
                prometheus.wait(10)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()
        self.addCleanup(stop)

        up = requests = None
        while time.monotonic() - started < 20:
            up = self.query(web, 'up{job="reverbd"}')
            requests = self.query(web, 'reverb_requests_total{job="reverbd"}')
            if up == 1 and requests == SENT:
                break
            time.sleep(0.25)
        with open(os.path.join(tmp.name, "prometheus.log"), encoding="utf-8",
                  errors="replace") as f:
            prometheus_log = f.read()
        self.assertEqual(up, 1, "up{job=reverbd} != 1 after 20 s\n" + prometheus_log)
        self.assertEqual(requests, SENT, prometheus_log)
        # The histogram arrived whole: its count is the request count too.
        self.assertEqual(self.query(web, "reverb_request_service_seconds_count"), SENT)
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
