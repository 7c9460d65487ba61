#!/usr/bin/env python3
"""Misuse traps keep their messages in release builds.

Runs every misuse scenario of the release-built test helper
(`EVTestHelper misuse --list`: a name and the text its trap must print)
and fails unless each ends in a trap whose standard error contains that
text. An optimized build drops `precondition`'s message; the package traps
through `fatalError` (EventCore's `misuse`) so that it does not.
"""
import subprocess
import sys

helper = sys.argv[1] if len(sys.argv) > 1 else ".build/release/EVTestHelper"
environment = {"SWIFT_BACKTRACE": "enable=no", "PATH": "/usr/bin:/bin"}
listing = subprocess.run([helper, "misuse", "--list"], capture_output=True, text=True, env=environment, check=True)
scenarios = [line.split("\t", 1) for line in listing.stdout.splitlines() if "\t" in line]
failed = 0
for name, message in scenarios:
    result = subprocess.run([helper, "misuse", name], capture_output=True, text=True, env=environment, timeout=120)
    trapped = result.returncode not in (0, 1)
    said = message in result.stderr
    print(f"{'ok  ' if trapped and said else 'FAIL'} {name}: exit {result.returncode}"
          f"{'' if said else f', stderr lacks {message!r}: {result.stderr.strip()[-300:]!r}'}")
    failed += 0 if trapped and said else 1
print(f"misuse messages in release: {len(scenarios) - failed} of {len(scenarios)} scenarios trap with their message")
sys.exit(1 if failed or not scenarios else 0)
