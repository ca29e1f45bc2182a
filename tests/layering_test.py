#!/usr/bin/env python3
"""The layer arrows, checked: base <- proto <- server, and the load generator never uses the server.

Usage: layering_test.py SOURCE_ROOT REVERB_LOAD_BINARY
Prints TAP, one line per rule, for meson's `protocol : 'tap'`. Headers are included by path from
src/, which the compiler cannot fence per layer, so this reads the includes themselves; and a
header-only piece of the server (the job queue) would link without complaint, so it also reads the
reverb-load binary's symbols with nm.
"""

import re
import subprocess
import sys
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)

# (files under these folders, may not include headers under these prefixes)
RULES = [
    (["src/base"], ["proto/", "server/"]),
    (["src/proto"], ["server/"]),
    (["tools"], ["server/"]),
]
# What reverb-load must not contain: the server engine and the libraries only it uses.
FORBIDDEN_SYMBOLS = re.compile(r"spdlog|io_uring|moodycamel|reverb::(Reactor|Connection|Server|"
                               r"WorkerPool|EpollBackend|IoUringBackend)\b", re.IGNORECASE)


def wrong_includes(root, folders, prefixes):
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in {".h", ".cpp", ".inc"}:
                continue
            for header in INCLUDE.findall(path.read_text(encoding="utf-8")):
                if any(header.startswith(p) for p in prefixes):
                    found.append(f"{path.relative_to(root)} includes {header}")
    return found


def main(argv):
    if len(argv) != 3:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    root, binary = Path(argv[1]), argv[2]
    results = []
    for folders, prefixes in RULES:
        name = f"{', '.join(folders)} includes nothing from {', '.join(prefixes)}"
        results.append((name, wrong_includes(root, folders, prefixes)))
    symbols = subprocess.run(["nm", "-C", binary], capture_output=True, text=True, check=False)
    bad = [line for line in symbols.stdout.splitlines() if FORBIDDEN_SYMBOLS.search(line)]
    if symbols.returncode != 0 or not symbols.stdout:
        bad = [f"nm {binary} failed: {symbols.stderr.strip()}"]
    results.append(("reverb-load has no server, spdlog, liburing or concurrentqueue symbol", bad))

    print(f"1..{len(results)}")
    failed = 0
    for number, (name, problems) in enumerate(results, 1):
        print(f"{'not ok' if problems else 'ok'} {number} - {name}")
        for problem in problems[:20]:
            print(f"# {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
