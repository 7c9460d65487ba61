#!/usr/bin/env python3
"""The suite under load, run after run: `make stress-test`.

Each run starts one busy process per core (a plain spin loop at the same
priority as the tests, so the tests get about half the machine), runs the
whole Swift Testing suite once (`swift test --skip-build`), stops the load,
and records which tests failed. It goes on for --runs runs, or, with
--until-passes N, until N runs in a row have passed (at most --runs runs).

A flaky test is a defect: the report lists every failure of every run with
the run's log file, and the exit status is 1 if any run failed (0 when
--until-passes was reached, with the failures on the way still listed).
"""
import argparse
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time

FAILED = re.compile(r"^✘ Test (?!run with)(\S+?\([^)]*\))")
SUMMARY = re.compile(r"Test run with (\d+) tests? in \d+ suites? (passed|failed) after ([\d.]+) seconds")


def spin():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs at most (default 5)")
    parser.add_argument("--until-passes", type=int, default=0,
                        help="stop once this many runs in a row have passed (0: run --runs times)")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes (default: one per core)")
    parser.add_argument("--swift", default=os.environ.get("SWIFT", "swift"))
    parser.add_argument("--traits", default="EventLoopServices", help="the package traits the suite was built with")
    parser.add_argument("--scratch-path", default=".build", help="the build folder the suite was built in")
    parser.add_argument("--logs", default=".build-stress", help="where each run's output goes")
    parser.add_argument("--filter", default=None, help="run only the tests matching this (swift test --filter)")
    args = parser.parse_args()
    os.makedirs(args.logs, exist_ok=True)

    failures = []  # (run, test, log)
    passes_in_a_row = 0
    runs = 0
    started = time.time()
    for run in range(1, args.runs + 1):
        runs = run
        load = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.load)]
        for process in load:
            process.start()
        log_path = os.path.join(args.logs, f"run-{run}.log")
        command = [args.swift, "test", "--skip-build", "--disable-xctest", "--scratch-path", args.scratch_path]
        if args.traits:
            command += ["--traits", args.traits]
        if args.filter:
            command += ["--filter", args.filter]
        begun = time.time()
        with open(log_path, "w") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
        took = time.time() - begun
        for process in load:
            process.terminate()
        for process in load:
            process.join()
        failed_tests = []
        summary = None
        with open(log_path, errors="replace") as log:
            for line in log:
                match = FAILED.match(line)
                if match and match.group(1) not in failed_tests:
                    failed_tests.append(match.group(1))
                summary = SUMMARY.search(line) or summary
        ok = result.returncode == 0 and not failed_tests
        tests = summary.group(1) if summary else "?"
        print(f"run {run}: {'passed' if ok else 'FAILED'} ({tests} tests, {took:.0f} s, exit {result.returncode}, log {log_path})",
              flush=True)
        if ok:
            passes_in_a_row += 1
        else:
            passes_in_a_row = 0
            if not failed_tests:
                failed_tests = [f"(the run ended with exit status {result.returncode}; see the log)"]
            for test in failed_tests:
                print(f"    failed: {test}", flush=True)
                failures.append((run, test, log_path))
        if args.until_passes and passes_in_a_row >= args.until_passes:
            break

    minutes = (time.time() - started) / 60
    print(f"stress-test: {runs} runs under {args.load} busy processes in {minutes:.1f} min, "
          f"{len(failures)} failures, {passes_in_a_row} passed in a row at the end")
    for run, test, log in failures:
        print(f"  run {run}: {test} ({log})")
    if args.until_passes:
        return 0 if passes_in_a_row >= args.until_passes else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
