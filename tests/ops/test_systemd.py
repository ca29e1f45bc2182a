"""reverbd under a service manager: socket activation through systemd-socket-activate (package
systemd), and the sd_notify protocol seen from a NOTIFY_SOCKET datagram socket this test owns."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from ops_support import Reverbd, article_client, free_port, reverbd_path, tool


class SystemdTest(unittest.TestCase):
    def test_socket_activation_serves_the_article_client(self):
        activate = tool(self, "systemd-socket-activate", "systemd")
        # systemd-socket-activate cannot bind port 0: a free port, tried again if it was taken.
        for _ in range(5):
            port = free_port()
            server = Reverbd([activate, "-l", f"127.0.0.1:{port}", reverbd_path(self),
                              "--workers", "1"], listen=False, wait_ready=False)
            self.addCleanup(server.close)
            if server.wait_for(f"Listening on 127.0.0.1:{port}", 10):
                break
            server.close()
        else:
            self.fail("systemd-socket-activate could not listen on a free port")
        # It runs reverbd at the first connection, handing it the listening socket (fd 3).
        self.assertEqual(article_client(("127.0.0.1", port)), b".sajniN gnidoC oG")
        ready = server.wait_for("reverbd ready: listening on", 10)
        self.assertIsNotNone(ready, server.stderr())
        self.assertIn(f"listening on 127.0.0.1:{port} ", ready)
        self.assertIsNotNone(server.wait_for("socket activation: serving 1 inherited socket", 5))
        self.assertEqual(article_client(("127.0.0.1", port), b"abc"), b"cba")
        # systemd-socket-activate execs reverbd in its own process: SIGTERM reaches reverbd.
        self.assertEqual(server.stop(), 0, server.stderr())

    def test_listen_with_inherited_sockets_is_refused(self):
        activate = tool(self, "systemd-socket-activate", "systemd")
        port = free_port()
        server = Reverbd([activate, "-l", f"127.0.0.1:{port}", reverbd_path(self),
                          "--listen", "127.0.0.1:0"], listen=False, wait_ready=False)
        self.addCleanup(server.close)
        self.assertTrue(server.wait_for(f"Listening on 127.0.0.1:{port}", 10), server.stderr())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except OSError:
            pass
        self.assertEqual(server.process.wait(20), 1)
        self.assertIn("--listen cannot be used with inherited sockets", server.stderr())

    def test_notify_ready_watchdog_then_stopping(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(notify.close)
        notify.bind(path)
        notify.settimeout(10)
        # A watchdog of 0.3 s: reverbd must ping every 0.1 s while its loop runs.
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="300000")
        server = Reverbd([reverbd_path(self), "--workers", "1"], env=env)
        self.addCleanup(server.close)

        messages = []

        def receive_until(pattern, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                notify.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    message = notify.recv(4096).decode()
                except socket.timeout:
                    break
                messages.append(message)
                if re.search(pattern, message):
                    return message
            return None

        ready = receive_until(r"READY=1", 10)
        self.assertIsNotNone(ready, messages)
        self.assertRegex(ready, r"STATUS=listening on 127\.0\.0\.1:\d+ backend=")
        # Several pings while the loop answers.
        for _ in range(3):
            self.assertIsNotNone(receive_until(r"^WATCHDOG=1$", 5), messages)
        self.assertTrue(all("STOPPING" not in m for m in messages))
        self.assertEqual(article_client(server.address), b".sajniN gnidoC oG")

        server.signal(signal.SIGTERM)
        stopping = receive_until(r"STOPPING=1", 10)
        self.assertIsNotNone(stopping, messages)
        self.assertIn("STATUS=draining", stopping)
        self.assertEqual(server.process.wait(20), 0, server.stderr())
        self.assertLess(messages.index(ready), messages.index(stopping))

    def test_reload_is_announced(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(notify.close)
        notify.bind(path)
        notify.settimeout(10)
        config = os.path.join(tmp.name, "reverbd.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write('log-level = "info"\n')
        server = Reverbd([reverbd_path(self), "--workers", "1", "--config", config],
                         env=dict(os.environ, NOTIFY_SOCKET=path))
        self.addCleanup(server.close)
        self.assertIn("READY=1", notify.recv(4096).decode())
        server.signal(signal.SIGHUP)
        self.assertEqual(notify.recv(4096).decode(), "RELOADING=1")
        self.assertEqual(notify.recv(4096).decode(), "READY=1")
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
