"""The processes a run starts: the server under test, reverb-load, and the idle client.

ServerProcess starts a server on 127.0.0.1 port 0, waits for its `listening on ADDR` line and
stops it by PID (SIGTERM, then SIGKILL). run_load runs reverb-load to its end and samples the
server's CPU when the measured window opens and closes; idle_client opens many connections in
Python, checks one reply on each and keeps them open while the caller measures.
"""

import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time

from .common import STOP_TIMEOUT


class ServerProcess:
    """One server started on 127.0.0.1 port 0; ready once it printed `listening on ADDR`."""

    def __init__(self, argv, log_path, nice=0):
        self.argv = argv
        self.log_file = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=niceness(nice))
        self.ready_line = None
        self.address = None
        self._ready = threading.Event()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self):
        # Reads every stderr line into the log; the first `listening on` line makes it ready.
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.log_file.write(line)
            self.log_file.flush()
            if self.address is None:
                m = re.search(r"listening on (\S+)", line)
                if m:
                    self.ready_line = line.strip()
                    self.address = m.group(1)
                    self._ready.set()
        self._ready.set()  # stderr closed: the process ended (or will) without being ready

    def wait_ready(self, timeout):
        self._ready.wait(timeout)
        return self.address

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit; returns (exit status, clean?)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._drain.join(5)
                self.log_file.close()
                return self.proc.returncode, False
        self._drain.join(5)
        self.log_file.close()
        rc = self.proc.returncode
        return rc, rc in (0, -signal.SIGTERM)


def niceness(nice):
    """A preexec_fn that sets the child's nice value (None when there is nothing to change)."""
    if not nice:
        return None
    return lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)


def seconds_arg(value):
    return f"{value:g}s"


def load_command(reverb_load, address, wl, duration, warmup, json_path, quick):
    cmd = [str(reverb_load), "--target", address, "--threads", "1",
           "--connections", str(wl.connections), "--framing", wl.framing,
           "--size", str(wl.size), "--payload", "ascii", "--unit", "byte",
           "--duration", seconds_arg(duration), "--warmup", seconds_arg(warmup),
           "--json", str(json_path)]
    if wl.kind == "churn":
        cmd += ["--mode", "connect", "--source-addrs", "16"]
    if wl.kind == "bulk":
        # Few distinct large messages: the pool is built (and its replies computed) at start-up,
        # which is slow in sanitizer builds, and 64 is plenty to vary what the server sees.
        cmd += ["--distinct", "8" if quick else "64"]
    return cmd


def knee_step_seconds(args):
    """(measured seconds, warm-up seconds) of each knee step: the run's, at most 2 s and 0.5 s,
    so eight steps per server stay near the time of one closed-loop run of the full matrix."""
    return min(args.duration, 2.0), min(args.warmup, 0.5)


def knee_command(reverb_load, address, wl, rates, step, warmup, json_path):
    """reverb-load's open-loop sweep: one step per rate, each `warmup` then `step` seconds."""
    return [str(reverb_load), "--target", address, "--threads", "1",
            "--connections", str(wl.connections), "--framing", wl.framing,
            "--size", str(wl.size), "--payload", "ascii", "--unit", "byte",
            "--rate-steps", ",".join(f"{r:g}" for r in rates),
            "--duration", seconds_arg(step), "--warmup", seconds_arg(warmup),
            "--json", str(json_path)]


def run_load(cmd, log_path, deadline, sample, window, nice=0):
    """Runs reverb-load to its end. sample() is called when the measured window opens and when
    it closes (window = (start, end) in seconds after launch), so the server's CPU is taken over
    the same window as reverb-load's figures. Returns (exit status, CPU seconds reverb-load used
    in all, wall seconds, [window samples])."""
    samples = []
    with open(log_path, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=niceness(nice))
        timers = [threading.Timer(deadline, proc.kill)]
        timers += [threading.Timer(t, lambda: samples.append(sample())) for t in window]
        for t in timers:
            t.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            for t in timers:
                t.cancel()
        if len(samples) == 1:
            # The window's end and reverb-load's exit coincide and the timer lost the race: the
            # server has been idle since the load stopped, so its CPU time now is the end figure.
            cpu, machine, now = sample()
            samples.append((cpu, machine, min(now, start + window[1])))
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage.ru_utime + usage.ru_stime, time.monotonic() - start, samples


def idle_client(address, count, message, batch, timeout):
    """Opens `count` connections, sends `message` on each and checks the reply (chunk framing),
    batch by batch so no listen queue overflows; returns (sockets, mismatches, errors).
    The caller keeps the sockets open while it measures, then closes them."""
    host, port = address.rsplit(":", 1)
    expected = message[::-1]
    sockets, mismatches, errors = [], 0, 0
    sel = selectors.DefaultSelector()
    for first in range(0, count, batch):
        pending = {}
        for _ in range(min(batch, count - first)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            if s.connect_ex((host, int(port))) not in (0, 115):  # EINPROGRESS
                errors += 1
                s.close()
                continue
            pending[s] = b""
            sel.register(s, selectors.EVENT_WRITE)
        end = time.monotonic() + timeout
        while pending and time.monotonic() < end:
            for key, events in sel.select(max(0.0, end - time.monotonic())):
                s = key.fileobj
                if events & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or \
                            s.send(message) != len(message):
                        errors += 1
                        sel.unregister(s)
                        del pending[s]
                        s.close()
                        continue
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    errors += 1
                    sel.unregister(s)
                    del pending[s]
                    s.close()
                    continue
                pending[s] += data
                got = pending[s]
                if len(got) >= len(expected) or not expected.startswith(got):
                    if got != expected:
                        mismatches += 1
                    sel.unregister(s)
                    del pending[s]
                    sockets.append(s)
        for s in pending:  # no complete reply in time
            errors += 1
            sel.unregister(s)
            s.close()
    sel.close()
    return sockets, mismatches, errors
