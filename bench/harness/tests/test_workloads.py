"""workloads.py: which backends `reverbd --list-backends` offers, and the servers made of them."""

import stat
import tempfile
import unittest
from pathlib import Path

from harness.workloads import BackendsError, discover_servers, list_backends, parse_list_backends


class ParseListBackendsTest(unittest.TestCase):
    def test_epoll_only(self):
        self.assertEqual(parse_list_backends("epoll: available\n"), ["epoll"])

    def test_unavailable_backends_are_left_out(self):
        out = ("epoll: available\n"
               "io_uring: unavailable (kernel 5.4 lacks IORING_SETUP_SINGLE_ISSUER)\n")
        self.assertEqual(parse_list_backends(out), ["epoll"])

    def test_several_available_in_their_order(self):
        self.assertEqual(parse_list_backends("io_uring: available\nepoll: available\n"),
                         ["io_uring", "epoll"])

    def test_nothing_available(self):
        self.assertEqual(parse_list_backends("io_uring: unavailable (not built)\n"), [])
        self.assertEqual(parse_list_backends(""), [])

    def test_only_exact_lines_count(self):
        out = ("epoll: available \n"            # trailing blank
               " epoll: available\n"            # leading blank
               "epoll: available (fallback)\n"  # more after the word
               "epoll:available\n"
               "io-uring: available\n"          # not a \w+ name
               "backends: epoll\n"
               "poll: available\n")
        self.assertEqual(parse_list_backends(out), ["poll"])

    def test_last_line_without_newline_and_crlf(self):
        self.assertEqual(parse_list_backends("epoll: available\r\nkqueue: available"),
                         ["epoll", "kqueue"])


def fake_reverbd(folder, script):
    """An executable shell script at folder/src/reverbd/reverbd, as a build would have it."""
    path = Path(folder) / "src" / "reverbd" / "reverbd"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class ListBackendsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_lists_what_reverbd_prints(self):
        reverbd = fake_reverbd(self.tmp.name, '[ "$1" = --list-backends ] || exit 2\n'
                                              'echo "epoll: available"\n'
                                              'echo "io_uring: unavailable (no liburing)"')
        self.assertEqual(list_backends(reverbd), ["epoll"])

    def test_reverbd_without_the_flag_is_an_error_not_a_fallback(self):
        reverbd = fake_reverbd(self.tmp.name,
                               'echo "reverbd: The following argument was not expected: '
                               '$1 (see reverbd --help)" >&2\nexit 2')
        with self.assertRaises(BackendsError) as caught:
            list_backends(reverbd)
        message = str(caught.exception)
        self.assertTrue(message.startswith("reverbd --list-backends failed: "), message)
        self.assertIn("exited with status 2", message)
        self.assertIn("The following argument was not expected: --list-backends", message)

    def test_missing_binary(self):
        with self.assertRaises(BackendsError) as caught:
            list_backends(Path(self.tmp.name) / "no-such-reverbd")
        self.assertTrue(str(caught.exception).startswith("reverbd --list-backends failed: "))

    def test_no_available_backend_is_an_error(self):
        reverbd = fake_reverbd(self.tmp.name, 'echo "epoll: unavailable (seccomp)"')
        with self.assertRaises(BackendsError) as caught:
            list_backends(reverbd)
        self.assertIn("lists no available backend (epoll: unavailable (seccomp))",
                      str(caught.exception))

    def test_discover_servers_runs_reverbd_on_each_available_backend(self):
        fake_reverbd(self.tmp.name, 'printf "epoll: available\\nio_uring: available\\n"')
        found = discover_servers(Path(self.tmp.name))
        self.assertEqual([(s.name, s.extra, s.family) for s in found], [
            ("reverbd-w1", ["--workers", "1", "--unit", "byte", "--backend", "epoll"], "reverbd"),
            ("reverbd-w2", ["--workers", "2", "--unit", "byte", "--backend", "epoll"], "reverbd"),
            ("reverbd-w1-io_uring", ["--workers", "1", "--unit", "byte", "--backend", "io_uring"],
             "reverbd"),
            ("reverbd-w2-io_uring", ["--workers", "2", "--unit", "byte", "--backend", "io_uring"],
             "reverbd"),
            ("threaded", [], "baseline"), ("minimal", [], "baseline")])
        self.assertEqual(found[-1].binary, Path(self.tmp.name) / "bench" / "minimal")

    def test_discover_servers_adds_minimal_uring_when_built(self):
        fake_reverbd(self.tmp.name, 'echo "epoll: available"')
        binary = Path(self.tmp.name) / "bench" / "minimal_uring"
        binary.parent.mkdir()
        binary.touch()
        found = discover_servers(Path(self.tmp.name))
        self.assertEqual([(s.name, s.family) for s in found],
                         [("reverbd-w1", "reverbd"), ("reverbd-w2", "reverbd"),
                          ("threaded", "baseline"), ("minimal", "baseline"),
                          ("minimal_uring", "baseline")])
        self.assertEqual((found[-1].binary, found[-1].extra), (binary, []))

    def test_discover_servers_without_minimal_uring_goes_on(self):
        # A build without liburing has no bench/minimal_uring: the other servers, no error.
        fake_reverbd(self.tmp.name, 'echo "epoll: available"')
        (Path(self.tmp.name) / "bench").mkdir()
        self.assertEqual([s.name for s in discover_servers(Path(self.tmp.name))],
                         ["reverbd-w1", "reverbd-w2", "threaded", "minimal"])


if __name__ == "__main__":
    unittest.main()
