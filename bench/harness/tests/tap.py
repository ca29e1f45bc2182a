"""Runs the harness's unit tests and prints TAP 13, one line per test case, for meson.

Meson's `protocol : 'tap'` counts each `ok N - name` / `not ok N - name` line as a test and a
`# SKIP reason` as a skip, so a failing Python test shows by name in `meson test`. The plan line
comes first, from the number of cases discovered; a module that fails to import is a `not ok` of
its own (unittest turns it into a failing case). Diagnostics (tracebacks) are `#` lines. Exit
status 1 when any case failed, 0 otherwise. Usage: python3 bench/harness/tests/tap.py [DIR]
(DIR: another folder of unittest modules to run instead, e.g. tests/cluster, imported from DIR).
"""

import sys
import unittest
from pathlib import Path

TESTS = Path(__file__).resolve().parent
BENCH = TESTS.parent.parent   # the folder that holds the harness package


class TapResult(unittest.TestResult):
    """Prints one TAP line as each case ends: `not ok` when the case or any of its subTests
    failed or raised, `# SKIP` when it was skipped, `ok` otherwise. An error outside any case (a
    setUpClass that raised) gets a `not ok` line of its own."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.number = 0
        self._current = None   # the case running now, or None between cases
        self._problems = []    # tracebacks of the running case
        self._directive = ""

    def _line(self, ok, name, directive="", details=()):
        self.number += 1
        print(f"{'ok' if ok else 'not ok'} {self.number} - {name}{directive}", file=self.stream)
        for detail in details:
            for line in detail.rstrip().splitlines():
                print(f"# {line}", file=self.stream)
        self.stream.flush()

    def startTest(self, test):
        super().startTest(test)
        self._current, self._problems, self._directive = test, [], ""

    def stopTest(self, test):
        super().stopTest(test)
        self._line(not self._problems, test.id(), self._directive, self._problems)
        self._current = None

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._problems.append(self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        if self._current is None:
            self._line(False, str(test), details=[self.errors[-1][1]])
        else:
            self._problems.append(self.errors[-1][1])

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._problems.append(f"{subtest.id()}:\n" +
                                  (self.failures if failed else self.errors)[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._directive = f" # SKIP {reason}"

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._directive = " # TODO expected failure"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._problems.append("unexpected success (the case is marked expectedFailure)")


def main():
    start, top = TESTS, BENCH
    if len(sys.argv) > 1:
        start = top = Path(sys.argv[1]).resolve()
    suite = unittest.defaultTestLoader.discover(str(start), top_level_dir=str(top))
    print("TAP version 13")
    print(f"1..{suite.countTestCases()}", flush=True)
    result = TapResult(sys.stdout)
    suite.run(result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
