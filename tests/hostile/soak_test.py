"""The soak's CI version (issue 12): scripts/soak --seconds 60 against this build's reverbd and
reverb-load, as one TAP case. Passes when the soak does (0 mismatches and errors, RSS floor
growth under 15% after the warm-up in so short a run, fds back at the baseline, a clean exit); its figures are printed
as TAP diagnostics. In a sanitizer build it skips, saying why: a sanitizer's allocator and
quarantine change RSS by far more than the 5% the soak checks.
Usage (meson sets the environment): python3 tests/hostile/soak_test.py SECONDS
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def main():
    seconds = sys.argv[1] if len(sys.argv) > 1 else "60"
    print("TAP version 13\n1..1", flush=True)
    sanitize = os.environ.get("HOSTILE_SANITIZE", "none")
    if sanitize not in ("", "none"):
        print(f"ok 1 - soak {seconds} s # SKIP b_sanitize={sanitize}: the sanitizer's allocator "
              "changes RSS by far more than the 5% growth the soak checks; the plain build runs it")
        return 0
    with tempfile.TemporaryDirectory(prefix="reverb-soak-") as out:
        # 60 s is too short for the 5% that the 10-minute soak holds: with no leak, 60 s runs saw
        # the RSS floor move between -12% and +3.6% (glibc's kept heap, docs/RELIABILITY.md), so
        # CI's short run fails only on growth of 15% or more, a gross leak. By hand:
        # scripts/soak --minutes 10 (5%).
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak"), "--seconds", seconds,
                            "--out", out, "--rss-growth", "15"],
                           capture_output=True, text=True, timeout=600)
    lines = (r.stdout + r.stderr).splitlines()
    print(f"{'ok' if r.returncode == 0 else 'not ok'} 1 - soak {seconds} s")
    shown = lines if r.returncode != 0 else [l for l in lines if l.startswith("soak:")]
    for line in shown[-150:]:
        print(f"# {line}")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
