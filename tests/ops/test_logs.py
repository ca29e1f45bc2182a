"""reverbd's logs: SIGHUP reloads the log level and nothing else, --log-format json, rate-limited
warnings, and a stalled stderr that must not stop the service."""

import fcntl
import json
import os
import resource
import signal
import socket
import struct
import tempfile
import threading
import time
import unittest

from ops_support import (READY, Reverbd, http_get, parse_metrics, read_until, reverbd_path,
                         wait_until)

# One length-framed request announcing a 4 GiB frame: over any --max-frame, a protocol error.
BAD_FRAME = b"\xff\xff\xff\xff"


def length_request(payload):
    return struct.pack(">I", len(payload)) + payload


def length_exchange(sock, payload):
    """Sends one length-framed request and reads its reply's payload."""
    sock.sendall(length_request(payload))
    reply = b""
    while len(reply) < 4 + len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(reply)} reply bytes")
        reply += chunk
    return reply[4:]


def send_bad(address, count):
    """`count` connections, each sending a bad frame header and closing."""
    for _ in range(count):
        with socket.create_connection(address, timeout=10) as s:
            s.sendall(BAD_FRAME)


class LogsTest(unittest.TestCase):
    def test_sighup_reloads_the_log_level_and_nothing_else(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        config = os.path.join(tmp.name, "reverbd.toml")

        def write(text):
            with open(config, "w", encoding="utf-8") as f:
                f.write(text)

        write('framing = "length"\nunit = "byte"\nlog-level = "info"\n')
        server = Reverbd([reverbd_path(self), "--config", config, "--workers", "1",
                          "--metrics-listen", "127.0.0.1:0"])
        self.addCleanup(server.close)
        debug_line = "closing: frame over the limit"

        send_bad(server.address, 1)
        self.assertTrue(server.wait_for("over the limit of", 10))  # the warning
        self.assertIsNone(server.wait_for(debug_line, 0.2), "a debug line at level info")

        # The file now asks for debug, and for line framing: only the level is reloaded.
        write('framing = "line"\nunit = "byte"\nlog-level = "debug"\n')
        mark = server.line_count()
        server.signal(signal.SIGHUP)
        self.assertTrue(server.wait_for(f"SIGHUP: log level debug (from {config})", 10, mark),
                        server.stderr())
        send_bad(server.address, 1)
        self.assertTrue(server.wait_for(debug_line, 10), server.stderr())
        with socket.create_connection(server.address, timeout=10) as s:
            self.assertEqual(length_exchange(s, b"still length"), b"htgnel llits")

        # A bad value changes nothing and says so.
        write('log-level = "loud"\n')
        mark = server.line_count()
        server.signal(signal.SIGHUP)
        self.assertTrue(server.wait_for("SIGHUP:", 10, mark), server.stderr())
        self.assertTrue(server.wait_for("log level stays debug", 1, mark), server.stderr())
        samples = parse_metrics(http_get(server.metrics, "/metrics")[1])
        self.assertEqual(samples['reverb_config_reloads_total{result="ok"}'], 1)
        self.assertEqual(samples['reverb_config_reloads_total{result="failed"}'], 1)

        # Without the key, the level goes back to the default, info.
        write("")
        mark = server.line_count()
        server.signal(signal.SIGHUP)
        self.assertTrue(server.wait_for("SIGHUP: log level info", 10, mark), server.stderr())
        self.assertEqual(server.stop(), 0, server.stderr())

    def test_sighup_leaves_a_command_line_level(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        config = os.path.join(tmp.name, "reverbd.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write('log-level = "debug"\n')
        server = Reverbd([reverbd_path(self), "--config", config, "--log-level", "info",
                          "--framing", "length", "--workers", "1"])
        self.addCleanup(server.close)
        server.signal(signal.SIGHUP)
        self.assertTrue(server.wait_for("--log-level was given on the command line", 10))
        send_bad(server.address, 1)
        self.assertTrue(server.wait_for("over the limit of", 10))
        self.assertIsNone(server.wait_for("closing: frame over the limit", 0.2))
        self.assertEqual(server.stop(), 0)

    def test_json_lines(self):
        server = Reverbd([reverbd_path(self), "--log-format", "json", "--framing", "length",
                          "--workers", "1"])
        self.addCleanup(server.close)
        send_bad(server.address, 1)
        self.assertTrue(server.wait_for("over the limit of", 10))
        self.assertEqual(server.stop(), 0)
        records = [json.loads(line) for line in server.lines if not line.startswith(READY)]
        self.assertGreaterEqual(len(records), 4)  # backend, warning, draining, stopped
        for record in records:
            self.assertEqual(set(record), {"time", "level", "msg"})
            self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertIn("warning", {r["level"] for r in records})
        self.assertTrue(any(r["msg"].startswith("stopped: ") for r in records))

    def test_repeated_warnings_are_rate_limited(self):
        server = Reverbd([reverbd_path(self), "--framing", "length", "--workers", "2",
                          "--metrics-listen", "127.0.0.1:0"])
        self.addCleanup(server.close)
        send_bad(server.address, 50)
        samples = wait_until(lambda: (lambda s: s if s.get(
            'reverb_protocol_errors_total{kind="too_long"}') == 50 else None)(
                parse_metrics(http_get(server.metrics, "/metrics")[1])), 10)
        self.assertTrue(samples, "the 50 protocol errors were never counted")
        self.assertEqual(server.stop(), 0)
        warnings = [line for line in server.lines if "over the limit of" in line]
        # 5 per 10 s go out; within 10 s at most one window boundary: at most 10.
        self.assertGreaterEqual(len(warnings), 5)
        self.assertLessEqual(len(warnings), 10)
        self.assertEqual(samples["reverb_log_messages_suppressed_total"], 50 - len(warnings))

    def test_a_stalled_stderr_does_not_stop_the_service(self):
        # stderr is a pipe that this test fills and never reads. 2,000 connections send bad input,
        # each making a warning (rate-limited) and a debug line, far more than the pipe and the
        # 64-line log queue hold. A well-behaved client must still get every reply in time.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        server = Reverbd([reverbd_path(self), "--listen", "127.0.0.1:0", "--framing", "length",
                          "--unit", "byte", "--max-frame", "1024", "--workers", "2",
                          "--log-level", "debug", "--log-queue", "64",
                          "--metrics-listen", "127.0.0.1:0"], stderr=write_end, listen=False)
        os.close(write_end)
        self.addCleanup(server.close)
        head = read_until(read_end, READY, 20)
        self.assertIn(READY, head)
        server.parse_ready(head[head.index(READY):].split("\n")[0])

        # Fill the pipe through a second, non-blocking open of it (reverbd's end stays blocking).
        filler = os.open(f"/proc/{os.getpid()}/fd/{read_end}", os.O_WRONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, filler)
        try:
            while True:
                os.write(filler, b"#" * 4096)
        except BlockingIOError:
            pass
        try:
            while True:
                os.write(filler, b"#")
        except BlockingIOError:
            pass

        worst = 0.0
        replies = 0
        stop = threading.Event()
        failures = []

        def good_client():
            nonlocal worst, replies
            try:
                with socket.create_connection(server.address, timeout=5) as s:
                    while not stop.is_set():
                        started = time.monotonic()
                        if length_exchange(s, b"in time") != b"emit ni":
                            failures.append("wrong reply")
                            return
                        worst = max(worst, time.monotonic() - started)
                        replies += 1
                        stop.wait(0.01)
            except OSError as e:  # a 5 s receive timeout included
                failures.append(repr(e))

        client = threading.Thread(target=good_client)
        client.start()
        senders = [threading.Thread(target=send_bad, args=(server.address, 500)) for _ in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(120)
        counted = wait_until(lambda: parse_metrics(http_get(server.metrics, "/metrics")[1]).get(
            'reverb_protocol_errors_total{kind="too_long"}') == 2000, 30)
        stop.set()
        client.join(30)

        self.assertEqual(failures, [])
        self.assertTrue(counted, "the 2,000 protocol errors were never counted")
        self.assertGreater(replies, 0)
        self.assertLess(worst, 2.0, f"the well-behaved client waited {worst:.2f} s for a reply")
        # After the flood, with stderr still stalled, a new client is served at once too.
        with socket.create_connection(server.address, timeout=2) as s:
            self.assertEqual(length_exchange(s, b"after"), b"retfa")
        samples = parse_metrics(http_get(server.metrics, "/metrics")[1])
        self.assertGreater(samples["reverb_log_messages_dropped_total"], 0)
        self.assertGreater(samples["reverb_log_messages_suppressed_total"], 0)
        # The stall held to the end: the pipe is still full.
        with self.assertRaises(BlockingIOError):
            os.write(filler, b"#")
        # And it cannot hold the exit: logs get 2 s, then reverbd leaves with its status.
        started = time.monotonic()
        self.assertEqual(server.stop(timeout=20), 0)
        self.assertLess(time.monotonic() - started, 10)


if __name__ == "__main__":
    unittest.main()
