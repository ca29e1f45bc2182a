#!/usr/bin/env python3
"""Counts the test cases of one `meson test` run, for scripts/test's closing line.

Usage: count_results.py BUILD_DIR
Prints "PASSED FAILED SKIPPED" on stdout, and on stderr every failed case and every skipped case
with its reason.

The counts come from meson's own logs: meson-logs/testlog.junit.xml has one <testcase> per
GoogleTest case (tests declared with protocol 'gtest'), one per TAP line (protocol 'tap': the
harness's Python tests) and one per plain exit-code test (bench-quick). A case with <failure> or
<error> failed; one with <skipped> was skipped. Two rules keep the count honest:

- a skip must say why (GTEST_SKIP() << why, a TAP "# SKIP why"); a skip with no reason is a failure,
  and so is a DISABLED_ GoogleTest case (status "notrun"): nothing may stop running quietly;
- a case meson writes for a whole program (a plain exit-code test, or a GoogleTest program that
  left no XML: a crash, a timeout) takes its verdict from testlog.json, never from the XML alone;
- meson-logs/testlog.json has the verdict of each test program. A program that meson counts as
  failed (a crash, a sanitizer report at exit, a timeout) while its cases all look fine in the
  JUnit file (a stale or partial XML) adds one failure, so a dead program is never a pass.
"""

import json
import sys
import xml.etree.ElementTree as et
from pathlib import Path

PROJECT = "reverb"
GOOD_VERDICTS = {"OK", "SKIP", "EXPECTEDFAIL"}


def skip_reason(case, from_output):
    """The reason text of a <skipped> case, without GoogleTest's leading "file:line" line.
    `from_output`: a TAP case or a whole program, whose reason meson keeps in <system-out> (a TAP
    directive's explanation; a skipping program's last line of output)."""
    skipped = case.find("skipped")
    text = (skipped.get("message") or skipped.text or "") if skipped is not None else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].rsplit(":", 1)[-1].isdigit():  # "../tests/x_test.cpp:53"
        lines = lines[1:]
    if not lines and from_output:
        out = case.find("system-out")
        if out is not None and out.text and out.text.strip():
            lines = [out.text.strip().splitlines()[-1].strip()]
    return " ".join(lines)


def owner(suite_name, case, programs):
    """The meson test that a JUnit case belongs to."""
    if suite_name == PROJECT:  # a plain exit-code test: the case is named after the test
        return case.get("name")
    for name in programs:
        prefix = f"{PROJECT}.{name}"
        if suite_name == prefix or suite_name.startswith(prefix + "."):
            return name
    return suite_name


def count(build_dir):
    logs = Path(build_dir) / "meson-logs"
    verdicts = {}
    with open(logs / "testlog.json", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                verdicts[entry["name"]] = entry["result"]
    # Longest names first, so "a / x" never claims the cases of "a / xy".
    programs = sorted(verdicts, key=len, reverse=True)

    passed = failed = skipped = 0
    failed_cases = {}
    root = et.parse(logs / "testlog.junit.xml").getroot()
    for suite in root.iter("testsuite"):
        suite_name = suite.get("name", "")
        for case in suite.findall("testcase"):
            program = owner(suite_name, case, programs)
            label = f"{program}: {case.get('classname', '')}.{case.get('name', '')}"
            whole_program = suite_name == PROJECT
            verdict = verdicts.get(program)
            if whole_program and verdict not in (None, "SKIP"):
                # One case for the whole program: its verdict is meson's, not the XML's (meson
                # writes no <failure> for a timeout).
                bad = verdict not in GOOD_VERDICTS
                why = f"ended {verdict}"
            elif case.find("failure") is not None or case.find("error") is not None:
                bad, why = True, ""
            elif case.get("status") == "notrun":
                bad, why = True, "disabled (a DISABLED_ case never runs)"
            else:
                bad, why = False, ""
            if bad:
                failed += 1
                failed_cases[program] = failed_cases.get(program, 0) + 1
                print(f"  failed  {label}{': ' + why if why else ''}", file=sys.stderr)
            elif case.find("skipped") is not None or (whole_program and verdict == "SKIP"):
                tap = suite_name == f"{PROJECT}.{program}"
                reason = skip_reason(case, from_output=tap or whole_program)
                if reason:
                    skipped += 1
                    print(f"  skipped {label}: {reason}", file=sys.stderr)
                else:
                    failed += 1
                    failed_cases[program] = failed_cases.get(program, 0) + 1
                    print(f"  failed  {label}: skipped without a reason", file=sys.stderr)
            else:
                passed += 1

    for program, verdict in verdicts.items():
        if verdict not in GOOD_VERDICTS and not failed_cases.get(program):
            failed += 1
            print(f"  failed  {program}: the program ended {verdict} although its cases passed",
                  file=sys.stderr)
    return passed, failed, skipped


def main(argv):
    if len(argv) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    try:
        passed, failed, skipped = count(argv[1])
    except (OSError, ValueError, et.ParseError) as e:
        print(f"count_results: cannot read the test logs of {argv[1]}: {e}", file=sys.stderr)
        return 1
    print(passed, failed, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
