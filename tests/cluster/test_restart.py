"""scripts/restart under load: a new reverbd starts beside the old one (SO_REUSEPORT), the old one
drains, and no reply is lost.

Accounting: reverb-load runs a fixed number of requests (--requests, no warmup) and waits for every
reply, so every reply either server computed must reach it. Lost replies = the two servers'
request counters (their exit lines) minus the replies reverb-load received; it must be 0.
Requests sent on an old connection after its drain began are not read by the old server (its
input ends where the kernel's buffer ended at SIGTERM); reverb-load sees those connections end
with replies owed (early_eof) and reconnects to the new server. Those, and any connect that
failed, are counted and printed, not asserted: they are what a restart costs a client.
"""

import os
import signal
import subprocess
import sys
import tempfile
import unittest

from support import (REVERBD, ROOT, Load, free_port, missing_binaries, start_reverbd,
                     stopped_counts, wait_exit)


class RestartTest(unittest.TestCase):
    def setUp(self):
        why = missing_binaries()
        if why:
            self.skipTest(why)
        self.children = []
        self.adopted = []  # PIDs of processes scripts/restart started (not our children)

    def tearDown(self):
        for child in self.children:
            child.stop()
        for pid in self.adopted:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def restart_under(self, server_args, load_args):
        port = free_port()
        address = f"127.0.0.1:{port}"
        old, _ = start_reverbd(["--listen", address, "--reuseport", "--workers", "1",
                                *server_args])
        self.children.append(old)
        load = Load(address, ["--warmup", "0", *load_args])
        self.children.append(load.child)
        # The loads are paced to last about 3 s whatever the build's speed; the restart begins at
        # reverb-load's first progress line, 1 s in (checked below: both processes served).
        self.assertTrue(load.wait_progress(), load.child.text())
        fd, log = tempfile.mkstemp(prefix="reverb-restart-", suffix=".log")
        os.close(fd)
        restart = subprocess.run(
            [str(ROOT / "scripts" / "restart"), "--log", log, str(old.pid), "--", REVERBD,
             "--listen", address, "--workers", "1", *server_args],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(restart.returncode, 0, restart.stdout + restart.stderr)
        self.assertIn("drained", restart.stdout)
        new_pid = int(restart.stdout.split("new PID ")[1].split()[0])
        self.adopted.append(new_pid)
        code, result = load.result()
        self.assertEqual(old.wait(30), 0, old.text())
        # The new process is not our child: SIGTERM it by PID and wait for its exit line.
        os.kill(new_pid, signal.SIGTERM)
        self.assertTrue(wait_exit(new_pid, 30), "the new reverbd did not drain in 30 s")
        self.adopted.remove(new_pid)  # gone: its PID must not be signalled again
        with open(log, errors="replace") as f:
            new_log = f.read()
        os.unlink(log)
        old_counts = stopped_counts(old.text())
        new_counts = stopped_counts(new_log)
        self.assertIsNotNone(old_counts, old.text())
        self.assertIsNotNone(new_counts, new_log)
        answered = old_counts[1] + new_counts[1]
        received = result["requests_all"]
        errors = result["errors_by_cause"]
        print(f"# restart ({' '.join(load_args)}): old served {old_counts[1]}, new "
              f"{new_counts[1]}; replies received {received}; lost replies {answered - received}; "
              f"errors {errors}", file=sys.stderr)
        self.assertEqual(result["mismatches"], 0, load.child.text())
        # Both processes served part of the load: the restart happened under it.
        self.assertGreater(old_counts[1], 0)
        self.assertGreater(new_counts[1], 0)
        self.assertEqual(answered - received, 0, "replies lost in the restart")
        return result

    def test_restart_under_pipelined_requests(self):
        result = self.restart_under(
            ["--framing", "line"],
            ["--framing", "line", "--connections", "8", "--pipeline", "8", "--rate", "40000",
             "--requests", "120000"])
        # Requests go out at their pace without waiting for earlier replies (up to 8 in flight
        # per connection). Connections that the old server closed with requests owed end as
        # early_eof, at most one per connection; no connect fails (the new listener was there
        # all along).
        self.assertEqual(result["errors_by_cause"]["refused"], 0)
        self.assertLessEqual(result["errors"], 8)

    def test_restart_under_connection_churn(self):
        result = self.restart_under(
            [], ["--mode", "connect", "--connections", "8", "--connect-rate", "3000",
                 "--requests", "9000"])
        # Connects the kernel had queued on the old listener when it closed are the only ones a
        # restart can lose (see docs/OPERATIONS.md); they show as errors here, and stay few.
        self.assertLessEqual(result["errors"], 8 + 64, result["errors_by_cause"])


if __name__ == "__main__":
    unittest.main()
