"""What the cluster tests share: the binaries meson hands over, reverbd and reverb-load as child
processes (stopped by PID), scripts/cluster and HAProxy's stats socket.

Every process a test starts is ended by its PID in the test's cleanup; every wait has a deadline;
every address is on 127.0.0.0/8. Waits are on events (a ready line, a progress line, a process
exit) or on a state polled with a deadline (HAProxy's view of a backend), never a bare sleep.
"""

import json
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(os.environ.get("REVERB_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
REVERBD = os.environ.get("REVERBD", "")
REVERB_LOAD = os.environ.get("REVERB_LOAD", "")
HAPROXY = os.environ.get("HAPROXY", "")

STOPPED = re.compile(r"stopped: (\d+) connections, (\d+) requests, (\d+) bytes in, (\d+) bytes out")
# deploy/haproxy/reverb.cfg's health check: this chunk, answered reversed (same size).
CHECK_BYTES = len("reverb-health-check")


def missing_binaries():
    """Why the tests cannot run here, or None."""
    for name, path in (("REVERBD", REVERBD), ("REVERB_LOAD", REVERB_LOAD)):
        if not path or not os.access(path, os.X_OK):
            return f"{name} is not set to a binary: run through meson test"
    return None


def free_port(hosts=("127.0.0.1",)):
    """A TCP port that is free on every host in `hosts` right now (the kernel picks it)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as t:
                    t.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on every one of " + ", ".join(hosts))


class Child:
    """A child process whose stderr lines are collected by a thread; wait_for() blocks until a
    line matches (or the deadline). Ended by PID in stop()/kill()."""

    def __init__(self, args, stdout=subprocess.DEVNULL):
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self.lines = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append(None)  # end of output
            self._changed.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    def text(self):
        with self._changed:
            return "\n".join(line for line in self.lines if line is not None)

    def wait_for(self, pattern, timeout=20):
        """The first stderr match of `pattern` (a regex), or None at the deadline or at the end of
        the output."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if line is None:
                        return None
                    m = regex.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def wait(self, timeout):
        """Exit status, or None if still running at the deadline."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(timeout)
        return code

    def stop(self, timeout=30):
        """SIGTERM (reverbd drains), then SIGKILL after `timeout`; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.proc.kill()
            code = self.wait(timeout)
        return code


def start_reverbd(args, timeout=20):
    """reverbd with `args`; returns (child, the first address of its ready line)."""
    child = Child([REVERBD, *args])
    m = child.wait_for(r"ready: listening on (\S+)", timeout)
    if m is None:
        child.stop()
        raise AssertionError("reverbd never got ready:\n" + child.text())
    return child, m.group(1)


def stopped_counts(text):
    """(connections, requests, bytes in, bytes out) from reverbd's exit line, or None."""
    m = STOPPED.search(text)
    return tuple(int(g) for g in m.groups()) if m else None


def split_health_checks(requests, bytes_out, request_bytes, extra_bytes=0):
    """(client requests, health checks) among a backend's `requests`, when every client request
    had `request_bytes` bytes (chunk framing: a reply is as long as its request) and the checks
    CHECK_BYTES; `extra_bytes`: reply bytes beyond that of requests counted in `requests` too
    (17 - 16 for one article request among 16-byte ones). Exact: raises if the bytes do not add
    up, which a lost or doubled reply would cause."""
    surplus = bytes_out - request_bytes * requests - extra_bytes
    checks, rest = divmod(surplus, CHECK_BYTES - request_bytes)
    if rest != 0 or checks < 0 or checks > requests:
        raise AssertionError(f"{requests} requests and {bytes_out} reply bytes are not "
                             f"{request_bytes}-byte requests plus {CHECK_BYTES}-byte checks")
    return requests - checks, checks


class Load:
    """reverb-load as a child process writing --json; `result()` waits for it and reads the JSON."""

    def __init__(self, target, args):
        fd, self.json_path = tempfile.mkstemp(prefix="reverb-cluster-load-", suffix=".json")
        os.close(fd)
        self.child = Child([REVERB_LOAD, "--target", target, "--json", self.json_path, *args],
                           stdout=subprocess.PIPE)

    def wait_progress(self, timeout=30):
        """Blocks until the first progress line (about 1 s into the run)."""
        return self.child.wait_for(r"^\[\s*[0-9.]+ s\]", timeout) is not None

    def result(self, timeout=180):
        code = self.child.wait(timeout)
        if code is None:
            self.child.proc.kill()
            self.child.wait(10)
            raise AssertionError("reverb-load did not finish in time:\n" + self.child.text())
        try:
            with open(self.json_path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise AssertionError(f"no JSON from reverb-load ({e}):\n" + self.child.text())
        finally:
            try:
                os.unlink(self.json_path)
            except OSError:
                pass
        return code, data


def wait_exit(pid, timeout=10):
    """True once process `pid` (not necessarily our child) has exited: its pidfd turns readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def article_client(host, port, message=b"Go Coding Ninjas.", timeout=10):
    """The original article's client: connect, send the message, read the reply."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(message)
        reply = b""
        while len(reply) < len(message):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


class Cluster:
    """scripts/cluster up N in a private directory, with free ports; down() by its PIDs."""

    def __init__(self, count, extra=()):
        self.count = count
        self.dir = tempfile.mkdtemp(prefix="reverb-cluster-")
        hosts = tuple(f"127.0.0.{i + 1}" for i in range(1, count + 1))
        self.port = free_port(hosts)
        self.frontend_port = free_port()
        env = dict(os.environ, REVERBD=REVERBD, HAPROXY=HAPROXY)
        up = subprocess.run([str(ROOT / "scripts" / "cluster"), "up", str(count),
                             "--frontend", f"127.0.0.1:{self.frontend_port}",
                             "--port", str(self.port), "--dir", self.dir, "--", *extra],
                            env=env, capture_output=True, text=True, timeout=60)
        if up.returncode != 0:
            raise AssertionError("scripts/cluster up failed:\n" + up.stdout + up.stderr)
        self.target = f"127.0.0.1:{self.frontend_port}"

    def pid(self, i):
        return int(Path(self.dir, f"reverbd-{i}.pid").read_text())

    def log(self, i):
        return Path(self.dir, f"reverbd-{i}.log").read_text(errors="replace")

    def stats(self):
        """HAProxy's "show stat" rows for the backends: {name: {status, check, scur, stot}}."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(os.path.join(self.dir, "haproxy.sock"))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = {}
        for line in data.decode().splitlines():
            f = line.split(",")
            if len(f) > 37 and f[0] == "reverb" and f[1].startswith("rv"):
                rows[f[1]] = {"status": f[17], "check": f[36], "scur": int(f[4] or 0),
                              "stot": int(f[7] or 0)}
        return rows

    def wait_status(self, server, status, timeout):
        """Seconds until HAProxy shows `server` with `status` (polled every 50 ms), or None."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.stats().get(server, {}).get("status", "").startswith(status):
                return time.monotonic() - start
            time.sleep(0.05)
        return None

    def down(self):
        subprocess.run([str(ROOT / "scripts" / "cluster"), "down", "--dir", self.dir],
                       capture_output=True, text=True, timeout=90)
