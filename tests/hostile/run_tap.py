"""Runs the test modules of this folder (or those named) as TAP 13 for meson, with the harness's
TAP result (bench/harness/tests/tap.py: one line per case, tracebacks as # lines).
Usage: python3 tests/hostile/run_tap.py [PATTERN]   (default test*.py)
"""
import importlib.util
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
TAP = HERE.parent.parent / "bench" / "harness" / "tests" / "tap.py"


def main():
    spec = importlib.util.spec_from_file_location("reverb_tap", TAP)
    tap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tap)
    pattern = sys.argv[1] if len(sys.argv) > 1 else "test*.py"
    sys.path.insert(0, str(HERE))
    suite = unittest.defaultTestLoader.discover(str(HERE), pattern=pattern, top_level_dir=str(HERE))
    print("TAP version 13")
    print(f"1..{suite.countTestCases()}", flush=True)
    result = tap.TapResult(sys.stdout)
    suite.run(result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
