"""Hostile clients against a real reverbd (issue 12): slowloris, never-readers at scale, floods past
RLIMIT_NOFILE and past --max-connections, resets mid-frame, half-close storms, byte-by-byte
senders, pipelined bursts of 1-byte requests, a sender that reads slowly.

Each test holds a checker client (hostile_support.Checker) that must get correct replies in time
throughout, measures the server's CPU while the attack holds it at its limit (or, for attacks that
leave nothing behind, right after), and ends with fds back at the baseline exactly and RSS within
hostile_support.RSS_TOLERANCE of it. Counts and times are bounded; everything is on loopback.
"""

import os
import selectors
import socket
import struct
import threading
import time

from hostile_support import (MIB, HostileTest, close_all, connect_many, frame, recv_exact,
                             sanitized, wait_until)


def memory_bound(max_buffered, connections):
    """docs/OPERATIONS.md ("Memory: the bound"): RSS - RSS_idle <= B + 2 (M + N (S + R)) +
    N * 192 KiB, with B = 8 MiB (the io_uring receive ring; epoll's is less), S = 16 KiB and
    R = 64 KiB."""
    kib = 1024
    return 8 * MIB + 2 * (max_buffered + connections * (16 + 64) * kib) + connections * 192 * kib


def reset_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def watch_closes(socks, timeout, tick=None, tick_every=0.2):
    """Reads every socket until the server closes it (EOF or reset); calls tick(sock) every
    `tick_every` s on those still open. Returns {sock: seconds until closed}; raises after
    `timeout` s if some are still open."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    start = time.monotonic()
    closed = {}
    next_tick = start
    while len(closed) < len(socks):
        now = time.monotonic()
        if now - start > timeout:
            raise AssertionError(f"{len(socks) - len(closed)} of {len(socks)} connections still "
                                 f"open after {timeout} s")
        if tick and now >= next_tick:
            for s in socks:
                if s not in closed:
                    try:
                        tick(s)
                    except (BlockingIOError, ConnectionError, BrokenPipeError):
                        pass
            next_tick = now + tick_every
        for key, _ in sel.select(0.05):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            if not data:
                closed[s] = time.monotonic() - start
                sel.unregister(s)
    sel.close()
    return closed


class Slowloris(HostileTest):
    def test_slowloris_trickle(self):
        """60 clients trickle one byte of an unfinished line every 200 ms: --request-timeout 1
        closes each (counting from its request's first byte, so trickling gains nothing)."""
        server = self.start(["--request-timeout", "1", "--idle-timeout", "30"])
        socks = connect_many(server.address, 60)
        for s in socks:
            s.sendall(b"x")
        wait_until(lambda: server.fds() == self.base_fds + 60, 10, "60 connections accepted")
        closed = watch_closes(socks, 10, tick=lambda s: s.send(b"x"))
        worst = max(closed.values())
        print(f"# trickling connections closed after {min(closed.values()):.2f}-{worst:.2f} s")
        self.assertLess(worst, 4.0, "a trickling connection outlived --request-timeout 1 by 3 s")
        self.assertGreater(min(closed.values()), 0.5, "closed before --request-timeout")
        close_all(socks)
        self.assert_idle("after the trickle")
        self.finish("slowloris trickle", reasons={"request_timeout": 60})

    def test_slowloris_silent(self):
        """100 clients connect and send nothing, 100 send half a line and fall silent: the server
        idles while they are held, then --idle-timeout 2 and --request-timeout 1 close them."""
        server = self.start(["--request-timeout", "1", "--idle-timeout", "2"])
        silent = connect_many(server.address, 100)
        partial = connect_many(server.address, 100)
        for s in partial:
            s.sendall(b"half a line")
        wait_until(lambda: server.fds() == self.base_fds + 200, 10, "200 connections accepted")
        self.assert_idle("200 silent slowloris connections (the half lines close at 1 s)")
        closed = watch_closes(silent + partial, 10)
        worst = max(closed.values())
        print(f"# silent connections closed within {worst:.2f} s of the idle window's end")
        self.assertLess(worst, 5.0)
        close_all(silent)
        close_all(partial)
        self.finish("slowloris silent", reasons={"request_timeout": 100, "idle": 100})


class NeverReaders(HostileTest):
    CLIENTS = 200
    EACH = 512 * 1024
    MAX_BUFFERED = 16 * MIB

    def test_never_readers_at_scale(self):
        """200 clients each send up to 512 KiB of 1000-byte lines and never read (4 KiB receive
        buffers): reverbd's memory stays under OPERATIONS.md's bound for --max-buffered 16m,
        the checker is served, the held server idles, and all is given back when they leave."""
        server = self.start(["--max-buffered", "16m", "--request-timeout", "0",
                             "--idle-timeout", "0"])
        socks = []
        for _ in range(self.CLIENTS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(server.address)
            s.setblocking(False)
            socks.append(s)
        line = frame("line", b"n" * 999)
        block = line * 64
        sent = {s: 0 for s in socks}
        # Fill: send until every client is blocked (no progress for 1 s) or has sent its share.
        last_progress = time.monotonic()
        deadline = last_progress + 60
        while time.monotonic() - last_progress < 1.0:
            self.assertLess(time.monotonic(), deadline, "the fill did not settle in 60 s")
            moved = False
            for s in socks:
                if sent[s] >= self.EACH:
                    continue
                try:
                    n = s.send(block)
                except BlockingIOError:
                    continue
                sent[s] += n
                moved = True
            if moved:
                last_progress = time.monotonic()
            else:
                time.sleep(0.05)  # nothing sendable; the 1 s no-progress window is the event
        total = sum(sent.values())
        held = self.sampler.peak_rss() - self.base_rss
        bound = memory_bound(self.MAX_BUFFERED, self.CLIENTS + 1)
        print(f"# never-readers: sent {total / MIB:.1f} MiB, server held up to "
              f"{held / MIB:.1f} MiB over baseline (bound of OPERATIONS.md: {bound / MIB:.0f} MiB)")
        if not sanitized():
            self.assertLess(held, bound)
        self.assert_served("200 never-readers")
        self.assert_idle(f"{self.CLIENTS} never-readers held")
        close_all(socks)
        self.finish("never-readers")


class Floods(HostileTest):
    def test_flood_past_rlimit_nofile(self):
        """reverbd with RLIMIT_NOFILE 256 and --max-connections 1000: 400 connections run it out
        of descriptors (EMFILE); it pauses accepting instead of spinning, the checker is served,
        and once they leave it accepts again and its fds return to the baseline."""
        server = self.start(["--max-connections", "1000", "--idle-timeout", "0"], nofile=256)
        socks = connect_many(server.address, 400)
        wait_until(lambda: server.fds() >= 250, 10, "reverbd's fds near RLIMIT_NOFILE 256")
        self.assert_served("EMFILE")
        self.assert_idle("400 connections at RLIMIT_NOFILE 256 (EMFILE)")
        self.assertLessEqual(server.fds(), 256)
        close_all(socks)
        # The backlog's connections are accepted and closed as their EOF arrives.
        wait_until(lambda: server.fds() == self.base_fds, 20, "fds back after EMFILE")
        with socket.create_connection(server.address, timeout=10) as s:
            s.sendall(b"after the flood\n")
            self.assertEqual(recv_exact(s, 16), b"doolf eht retfa\n")
        self.finish("flood past RLIMIT_NOFILE")

    def test_flood_past_max_connections(self):
        """RLIMIT_NOFILE 256 gives --max-connections 192: 300 connections; those past the cap are
        reset at once (each client learns), the held ones idle, the checker is served."""
        server = self.start(["--idle-timeout", "0"], nofile=256)
        socks = connect_many(server.address, 300)
        closed = []
        wait_until(lambda: server.fds() >= self.base_fds + 150, 10, "held connections")
        # The rejected ones see a reset (or EOF) promptly.
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(closed) < 300 - 192 + 1:
            events = sel.select(0.5)
            if not events and len(closed) >= 300 - 192 - 1:
                break  # nothing more is coming: the rest are held
            for key, _ in events:
                try:
                    data = key.fileobj.recv(1)
                except ConnectionError:
                    data = b""
                if not data:
                    closed.append(key.fileobj)
                    sel.unregister(key.fileobj)
        sel.close()
        print(f"# {len(closed)} of 300 rejected, {server.fds() - self.base_fds} held")
        # 192 connections in all, counting the checker.
        self.assertGreaterEqual(len(closed), 300 - 192)
        self.assertLessEqual(len(closed), 300 - 192 + 2)
        self.assert_idle("191 connections held at --max-connections 192")
        close_all(socks)
        self.finish("flood past --max-connections", reasons={"rejected": 300 - 192})


class Resets(HostileTest):
    framing = "length"

    def test_resets_mid_frame(self):
        """300 clients send a length header and half its payload, then reset (SO_LINGER 0); 100
        send 10 complete 64 KiB frames and reset while the replies are being written."""
        server = self.start(["--idle-timeout", "0"])
        for _ in range(6):
            socks = connect_many(server.address, 50)
            for s in socks:
                s.sendall(struct.pack(">I", 1000) + b"r" * 500)
            for s in socks:
                reset_close(s)
        self.assert_served("resets mid-frame")
        payload = bytes(range(256)) * 256
        for _ in range(4):
            socks = connect_many(server.address, 25)
            for s in socks:
                s.sendall(frame("length", payload) * 10)
            for s in socks:
                reset_close(s)
        self.assert_served("resets mid-reply")
        wait_until(lambda: server.fds() == self.base_fds, 20, "fds back after the resets")
        self.assert_idle("after 400 resets")
        self.finish("resets mid-frame", reasons={"reset": 1})


class HalfClose(HostileTest):
    def test_half_close_storm(self):
        """3 waves of 100 clients: 3 lines each, shutdown(SHUT_WR) at once, then every reply and
        EOF must come back; then 100 that half-close and close without reading."""
        server = self.start([])
        for wave in range(3):
            socks = connect_many(server.address, 100)
            for i, s in enumerate(socks):
                s.sendall(b"".join(frame("line", b"wave %d client %d line %d" % (wave, i, k))
                                   for k in range(3)))
                s.shutdown(socket.SHUT_WR)
            for i, s in enumerate(socks):
                want = b"".join(frame("line", (b"wave %d client %d line %d" % (wave, i, k))[::-1])
                                for k in range(3))
                got = recv_exact(s, len(want))
                self.assertEqual(got, want)
                self.assertEqual(s.recv(1), b"", "no EOF after the replies of a half-close")
            close_all(socks)
        socks = connect_many(server.address, 100)
        for s in socks:
            s.sendall(frame("line", b"x" * 5000))
            s.shutdown(socket.SHUT_WR)
        close_all(socks)
        wait_until(lambda: server.fds() == self.base_fds, 20, "fds back after half-closes")
        self.assert_idle("after 400 half-closes")
        self.finish("half-close storm", reasons={"eof": 300})


class Trickles(HostileTest):
    def test_byte_by_byte_senders(self):
        """20 clients send 5 lines of 40 bytes one byte per send (TCP_NODELAY), interleaved; every
        reply is checked."""
        server = self.start([])
        socks = connect_many(server.address, 20)
        for s in socks:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [b"".join((b"%02d byte by byte line %d" % (i, k)).ljust(39, b".") + b"\n"
                          for k in range(5)) for i in range(20)]
        for pos in range(len(lines[0])):
            for s, data in zip(socks, lines):
                s.send(data[pos:pos + 1])
        for s, data in zip(socks, lines):
            want = b"".join(frame("line", l[::-1]) for l in data.split(b"\n")[:-1])
            self.assertEqual(recv_exact(s, len(want)), want)
        self.assert_served("byte-by-byte senders")
        self.assert_idle("20 byte-by-byte clients connected")
        close_all(socks)
        self.finish("byte-by-byte senders")

    def test_pipelined_one_byte_requests(self):
        """4 clients each pipeline 50,000 one-byte line requests in one burst while reading; the
        replies come back complete and in order."""
        server = self.start([])
        count = 50_000
        errors = []

        def client():
            try:
                with socket.create_connection(server.address, timeout=30) as s:
                    data = b"".join(frame("line", bytes([97 + i % 26])) for i in range(count))
                    writer = threading.Thread(target=s.sendall, args=(data,))
                    writer.start()
                    got = recv_exact(s, len(data))
                    writer.join()
                    if got != data:
                        errors.append("replies differ from the one-byte requests")
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertFalse(any(t.is_alive() for t in threads), "a pipelining client hung")
        self.assert_served("pipelined 1-byte bursts")
        wait_until(lambda: server.fds() == self.base_fds, 20, "fds back after the bursts")
        self.assert_idle("after 200,000 pipelined 1-byte requests")
        self.finish("pipelined 1-byte requests")


class GreedySender(HostileTest):
    def test_sender_reading_slowly(self):
        """5 clients send 1000-byte lines without limit for 4 s and read 16 KiB every 50 ms: the
        server paces them by back-pressure, memory stays bounded, every reply byte they read is
        right, the checker is served; stopped, they are held idle; closed, all is given back."""
        server = self.start(["--max-buffered", "8m", "--request-timeout", "0"])
        payloads = [b"%04d" % i + b"s" * 995 for i in range(100)]
        stream = b"".join(frame("line", p) for p in payloads)
        expected = b"".join(frame("line", p[::-1]) for p in payloads)
        stop = threading.Event()
        errors = []
        sent_total = []

        def client():
            try:
                s = socket.create_connection(server.address, timeout=10)
                s.setblocking(False)
                out = 0
                got = 0
                end = time.monotonic() + 4
                next_read = time.monotonic()
                while time.monotonic() < end:
                    try:
                        out += s.send(stream)
                    except BlockingIOError:
                        pass
                    if time.monotonic() >= next_read:
                        try:
                            data = s.recv(16384)
                        except BlockingIOError:
                            data = None
                        if data == b"":
                            raise ConnectionError("closed by the server")
                        if data:
                            # The replies are the reversed stream, cycling with it.
                            for k in range(0, len(data), 4096):
                                piece = data[k:k + 4096]
                                at = (got + k) % len(expected)
                                want = (expected * 2)[at:at + len(piece)]
                                if piece != want:
                                    raise AssertionError(f"reply bytes at {got + k} differ")
                            got += len(data)
                        next_read += 0.05
                    time.sleep(0.005)  # pacing the sender's loop
                sent_total.append((out, got))
                stop.wait(60)
                s.close()
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=client, daemon=True) for _ in range(5)]
        for t in threads:
            t.start()
        wait_until(lambda: len(sent_total) + len(errors) == 5, 30, "the greedy senders")
        self.assertEqual(errors, [])
        held = self.sampler.peak_rss() - self.base_rss
        print(f"# greedy senders: sent {sum(o for o, _ in sent_total) / MIB:.1f} MiB, read "
              f"{sum(g for _, g in sent_total) / MIB:.1f} MiB; server held up to "
              f"{held / MIB:.1f} MiB over baseline")
        if not sanitized():
            self.assertLess(held, memory_bound(8 * MIB, 6))
        self.assert_served("greedy senders")
        self.assert_idle("5 greedy senders held with full buffers")
        stop.set()
        for t in threads:
            t.join(10)
        self.finish("greedy senders reading slowly")
