"""What the operations tests (tests/ops/test_*.py) share: a reverbd child process awaited for its
ready line, the article's client, an HTTP GET, and the external tools they need.

Every test runs real processes on 127.0.0.1 with ports the kernel picks, and waits for events
(the ready line, a reply, a metric reaching a value) with a deadline, never a bare sleep. A tool
that is missing is a failure, not a skip: scripts/setup installs every one, so a machine without
them is misconfigured, and a skip would hide that.

Environment (set by meson, tests/ops/meson.build): REVERBD (the binary), REVERB_BUILD_DIR.
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

READY = "reverbd ready: listening on "


def tool(test, name, package):
    """The path of executable `name`; fails the test (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        test.fail(f"{name} not found: install the Debian package {package} (scripts/setup does)")
    return path


def reverbd_path(test):
    path = os.environ.get("REVERBD")
    if not path:
        test.fail("REVERBD is not set: run the ops tests through meson test")
    return path


def free_port():
    """A TCP port free on 127.0.0.1 right now, for tools that cannot take port 0
    (systemd-socket-activate, prometheus). Another process could take it before the tool binds it;
    callers that see "address in use" try again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_address(text):
    """("127.0.0.1", 2002) from "127.0.0.1:2002"."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Reverbd:
    """A reverbd child with stderr read by a thread (unless `stderr` is given: then the caller owns
    it). Waits for the ready line and parses the addresses and metrics= from it. stop() sends
    SIGTERM and waits; close() kills what is still running (tests call it from addCleanup)."""

    def __init__(self, args, env=None, stderr=None, listen=True, wait_ready=True, timeout=20):
        self.args = list(args)
        if listen and "--listen" not in self.args:
            self.args[1:1] = ["--listen", "127.0.0.1:0"]
        self.lines = []
        self._cond = threading.Condition()
        self._closed = False
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.PIPE, env=env)
        self.address = None
        self.metrics = None
        if stderr is None:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            if wait_ready:
                line = self.wait_for(READY, timeout)
                if line is None:
                    self.close()
                    raise AssertionError(f"reverbd never became ready; stderr:\n{self.stderr()}")
                self.parse_ready(line)

    def parse_ready(self, line):
        words = line[line.index(READY) + len(READY):].split()
        self.addresses = [w for w in words if "=" not in w]
        self.address = split_address(self.addresses[0])
        for w in words:
            if w.startswith("metrics="):
                self.metrics = w[len("metrics="):]
        return self

    def _read(self):
        for raw in self.process.stderr:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stderr(self):
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, text, timeout=20, start=0):
        """The first stderr line from index `start` on that contains `text` (or matches it, when
        it is a compiled regex), waiting up to `timeout` s; None if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if (text.search(line) if isinstance(text, re.Pattern) else text in line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(left)

    def line_count(self):
        with self._cond:
            return len(self.lines)

    def signal(self, sig):
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM, then the exit status (None if it did not exit in time)."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def article_client(address, message=b"Go Coding Ninjas.", timeout=10):
    """The original article's client: connect, send one message, read the reversal."""
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(message)
        reply = b""
        while len(reply) < len(message):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


def http_get(address, path, timeout=10):
    """(status, body) of GET http://address/path; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """{'name{labels}': value} from the text exposition format (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def wait_until(predicate, timeout, interval=0.05):
    """Polls `predicate` until it returns something true or `timeout` s pass; returns its last
    value. For state another process reaches on its own (a metric, a port), with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def read_until(fd, text, timeout):
    """Reads from `fd` until `text` has arrived or `timeout` s pass; returns what was read."""
    data = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")
