"""What the hostile-client tests (tests/hostile/test_hostile.py) share: a reverbd child with its
/proc figures sampled, a checker client served throughout, and the three assertions each test ends
with (the checker was served correctly in time; the server idle at the limit used no CPU; fds and
RSS came back to their baseline).

Every process runs on 127.0.0.1 with a port the kernel picks. Waits are on events (the ready line,
a connect, an fd count or a stats line reaching a value, polled with a deadline), never a bare
sleep used as synchronisation.

Environment (set by meson, tests/hostile/meson.build): REVERBD (the binary), HOSTILE_BACKEND
(auto, io_uring or epoll; a backend the kernel refuses skips with its reason, or fails under
REVERB_REQUIRE_BACKENDS=1 as scripts/test sets), HOSTILE_SANITIZE (the build's b_sanitize: RSS
figures are not checked under a sanitizer, which keeps freed memory in quarantine; the test says
so), HOSTILE_SKIP (a reason: every case skips with it; meson sets it in the TSan build).
"""

import os
import re
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

READY = "reverbd ready: listening on "
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# A checker reply later than this is not "in time": generous, the machine is shared with builds.
IN_TIME = 3.0
# The idle server at the limit: CPU over IDLE_WINDOW seconds, as a fraction of one core.
IDLE_WINDOW = 1.5
IDLE_CPU = 0.05
# RSS afterwards: within this of the baseline. reverbd gives buffer memory back (malloc_trim once
# 16 MiB were freed and freeing paused for a second; idle connections' buffers at their next
# deadline check), but glibc keeps some heap and thread arenas (docs/OPERATIONS.md, "Limits").
RSS_TOLERANCE = 16 * MIB


def sanitized():
    return os.environ.get("HOSTILE_SANITIZE", "none") not in ("", "none")


def wait_until(predicate, timeout, what):
    """Polls `predicate` every 20 ms until it is true; AssertionError naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _no_file_limit(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


class Reverbd:
    """A reverbd child on 127.0.0.1:0, awaited for its ready line; stderr read by a thread.
    `nofile` lowers its RLIMIT_NOFILE (soft and hard) before exec."""

    def __init__(self, args, nofile=None):
        binary = os.environ.get("REVERBD")
        if not binary:
            raise AssertionError("REVERBD is not set: run the hostile tests through meson test")
        backend = os.environ.get("HOSTILE_BACKEND", "auto")
        self.args = [binary, "--listen", "127.0.0.1:0", "--backend", backend] + list(args)
        self.lines = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=_no_file_limit(nofile) if nofile else None)
        self.pid = self.process.pid
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for(READY, 20)
        if line is None:
            self.kill()
            raise AssertionError(f"reverbd never became ready; stderr:\n{self.stderr()}")
        first = line[line.index(READY) + len(READY):].split()[0]
        host, _, port = first.rpartition(":")
        self.address = (host, int(port))

    def _read(self):
        for raw in self.process.stderr:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return next((l for l in self.lines if text in l), None)
                self._cond.wait(min(left, 0.2))

    def stderr(self):
        with self._cond:
            return "\n".join(self.lines[-60:])

    # /proc figures.
    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss(self):
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def cpu(self):
        """User + system CPU seconds so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self, timeout=30):
        """SIGTERM; the exit status and the `stopped:` line."""
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            status = None
        return status, self.wait_for("stopped:", 5) or ""

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Sampler(threading.Thread):
    """Samples the server's RSS, fds and CPU every 100 ms until stop(): peaks and a series."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.samples = []  # (seconds, rss bytes, fds, cpu seconds)
        self._halt = threading.Event()
        self.start()

    def run(self):
        start = time.monotonic()
        while not self._halt.wait(0.1):
            try:
                self.samples.append((time.monotonic() - start, self.server.rss(),
                                     self.server.fds(), self.server.cpu()))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                return

    def stop(self):
        self._halt.set()
        self.join()

    def peak_rss(self):
        return max((s[1] for s in self.samples), default=0)

    def peak_fds(self):
        return max((s[2] for s in self.samples), default=0)


def frame(framing, payload):
    if framing == "length":
        return struct.pack(">I", len(payload)) + payload
    return payload + b"\n"


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


class Checker(threading.Thread):
    """The well-behaved client: one request every 50 ms on its own connection (line or length
    framing, ASCII, so every unit gives the plain reversal), each reply checked byte for byte and
    timed. pause()/resume() around an idle-CPU window."""

    def __init__(self, address, framing):
        super().__init__(daemon=True)
        self.framing = framing
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.replies = 0
        self.worst = 0.0
        self.error = None
        self._halt = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Event()
        self.start()

    def run(self):
        n = 0
        try:
            while not self._halt.is_set():
                if not self._running.is_set():
                    self._idle.set()
                    self._running.wait(0.1)
                    continue
                self._idle.clear()
                payload = b"checker %d abcdefgh" % n
                start = time.monotonic()
                self.sock.sendall(frame(self.framing, payload))
                want = frame(self.framing, payload[::-1])
                got = recv_exact(self.sock, len(want))
                self.worst = max(self.worst, time.monotonic() - start)
                if got != want:
                    raise AssertionError(f"checker reply {n}: {got!r}, wanted {want!r}")
                self.replies += 1
                n += 1
                self._halt.wait(0.05)
        except Exception as e:  # reported by served()
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._idle.set()

    def wait_replies(self, more, timeout=20):
        target = self.replies + more
        wait_until(lambda: self.replies >= target or self.error, timeout,
                   f"{more} more checker replies")
        return self.error is None

    def pause(self):
        self._running.clear()
        wait_until(self._idle.is_set, 10, "the checker to pause")

    def resume(self):
        self._running.set()

    def finish(self):
        self._halt.set()
        if self.is_alive():
            self.join(15)
        self.sock.close()


class HostileTest(unittest.TestCase):
    """Each test: start() a server with the checker connected and a baseline taken; attack;
    assert_idle() while the attack holds the server at its limit; release the attackers;
    finish(), which checks the checker, fds and RSS, and a clean SIGTERM exit."""

    framing = "line"

    def setUp(self):
        reason = os.environ.get("HOSTILE_SKIP")
        if reason:
            self.skipTest(reason)
        backend = os.environ.get("HOSTILE_BACKEND", "auto")
        if backend != "auto":
            listing = subprocess.run([os.environ["REVERBD"], "--list-backends"],
                                     capture_output=True, text=True).stdout
            line = next((l for l in listing.splitlines() if l.startswith(backend + ":")), "")
            if line.strip() != backend + ": available":
                why = f"this kernel or build cannot run backend {backend}: {line or listing!r}"
                if os.environ.get("REVERB_REQUIRE_BACKENDS") == "1":
                    self.fail(why + " (REVERB_REQUIRE_BACKENDS=1)")
                self.skipTest(why)

    def start(self, args, nofile=None, framing=None):
        if framing:
            self.framing = framing
        self.server = Reverbd(["--framing", self.framing, "--workers", "2"] + list(args), nofile)
        self.addCleanup(self.server.kill)
        self.checker = Checker(self.server.address, self.framing)
        self.addCleanup(self.checker.finish)
        self.assertTrue(self.checker.wait_replies(3), self.checker.error)
        # Baseline: the checker's connection is open, the server has served it.
        wait_until(lambda: self.server.rss() > 0, 5, "an RSS figure")
        self.base_fds = self.server.fds()
        self.base_rss = self.server.rss()
        self.sampler = Sampler(self.server)
        self.addCleanup(self.sampler.stop)
        return self.server

    def assert_served(self, what):
        """The checker has been answered correctly and in time so far, and is answered now."""
        self.assertTrue(self.checker.wait_replies(3),
                        f"checker during {what}: {self.checker.error}")
        self.assertIsNone(self.checker.error, what)
        self.assertLess(self.checker.worst, IN_TIME,
                        f"a checker reply took {self.checker.worst:.2f} s during {what}")

    def assert_idle(self, what, window=IDLE_WINDOW):
        """With the attackers connected and quiet, and the checker paused, the server uses less
        than IDLE_CPU of a core over `window` seconds (no busy loop at the limit)."""
        self.checker.pause()
        before, t0 = self.server.cpu(), time.monotonic()
        time.sleep(window)  # the measurement window itself, not a synchronisation
        used = (self.server.cpu() - before) / (time.monotonic() - t0)
        self.checker.resume()
        print(f"# {what}: idle CPU {used * 100:.1f}% of a core over {window} s, "
              f"fds {self.server.fds()} (baseline {self.base_fds})")
        self.assertLess(used, IDLE_CPU, f"{what}: the server used {used:.1%} of a core idle")
        return used

    def finish(self, what, reasons=None):
        """Checker served; fds back to the baseline exactly; RSS within RSS_TOLERANCE; SIGTERM
        exits 0. `reasons`: close reasons (name -> minimum count) the stopped: line must show."""
        self.assert_served(what)
        wait_until(lambda: self.server.fds() == self.base_fds, 20,
                   f"fds back to {self.base_fds} after {what} (now {self.server.fds()})")
        if sanitized():
            print(f"# RSS not checked: a {os.environ['HOSTILE_SANITIZE']} build keeps freed "
                  f"memory in quarantine (peak {self.sampler.peak_rss() / MIB:.1f} MiB)")
        else:
            try:
                wait_until(lambda: self.server.rss() <= self.base_rss + RSS_TOLERANCE, 10,
                           "RSS back near the baseline")
            except AssertionError:
                self.fail(f"{what}: RSS {self.server.rss() / MIB:.1f} MiB, baseline "
                          f"{self.base_rss / MIB:.1f} MiB + {RSS_TOLERANCE / MIB:.0f} MiB")
        print(f"# {what}: peak RSS {self.sampler.peak_rss() / MIB:.1f} MiB (baseline "
              f"{self.base_rss / MIB:.1f}, after {self.server.rss() / MIB:.1f}), peak fds "
              f"{self.sampler.peak_fds()} (baseline {self.base_fds}), checker "
              f"{self.checker.replies} replies, worst {self.checker.worst * 1000:.0f} ms")
        self.checker.finish()
        self.sampler.stop()
        status, stopped = self.server.stop()
        self.assertEqual(status, 0, f"reverbd exit status; stderr:\n{self.server.stderr()}")
        self.assertNotIn("ERROR: AddressSanitizer", self.server.stderr())
        self.assertNotIn("runtime error:", self.server.stderr())
        for reason, minimum in (reasons or {}).items():
            m = re.search(rf"\b{reason} (\d+)", stopped)
            self.assertIsNotNone(m, f"no {reason} count in: {stopped}")
            self.assertGreaterEqual(int(m.group(1)), minimum, f"{reason} in: {stopped}")
        return stopped


def connect_many(address, count, timeout=10):
    """`count` connected sockets (the kernel completes the handshake before reverbd accepts)."""
    socks = []
    for _ in range(count):
        socks.append(socket.create_connection(address, timeout=timeout))
    return socks


def close_all(socks, reset=False):
    for s in socks:
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    socks.clear()
