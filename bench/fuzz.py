#!/usr/bin/env python3
"""Fuzz every parser hostile input reaches; prints inputs, crashes, hangs per target.

    scripts/bench fuzz                      # 100,000 inputs per target
    scripts/bench fuzz -n 5000 -t mime,rules --seed 7
    scripts/bench fuzz --properties 100000   # hypothesis: N examples per property

Targets and what counts as a crash, hang or wrong answer: test/support/fuzzing.py
and docs/security.md.  Exit status 1 if any target is not clean.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from support.fuzzing import TARGETS, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--inputs", type=int, default=100_000, help="inputs per target (default 100000)")
    parser.add_argument("-t", "--targets", default=",".join(TARGETS), help="comma-separated, of: " + ", ".join(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000, help="inputs between two liveness checks")
    parser.add_argument(
        "--properties",
        type=int,
        metavar="N",
        help="instead: run the hypothesis properties (test/unit/chatmaild/test_properties.py) with N examples each",
    )
    args = parser.parse_args()
    if args.properties:
        return properties(args.properties)
    names = [n for n in args.targets.split(",") if n]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; expected some of {', '.join(TARGETS)}")
    print(
        f"{'target':<15} {'inputs':>8} {'crashes':>8} {'hangs':>6} {'wrong':>6} {'dead':>5} {'seconds':>8} {'inputs/s':>9}"
    )
    clean = True
    for name in names:
        r = run(TARGETS[name](), args.inputs, seed=args.seed, batch=args.batch)
        rate = r.inputs / r.seconds if r.seconds else 0.0
        print(
            f"{r.name:<15} {r.inputs:>8} {r.crashes:>8} {r.hangs:>6} {r.wrong:>6} {r.dead_after_batch:>5} "
            f"{r.seconds:>8.1f} {rate:>9.0f}",
            flush=True,
        )
        for example in r.examples:
            print(f"    {example}")
        clean = clean and r.clean
    return 0 if clean else 1


def properties(examples: int) -> int:
    """The property-based tests with ``examples`` random examples each; prints hypothesis' counts per property."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CHATMAIL_HYPOTHESIS_PROFILE="long", CHATMAIL_HYPOTHESIS_EXAMPLES=str(examples))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"]
        + ["-m", "not system", "test/unit/chatmaild/test_properties.py"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    print(f"{'property':<75} {'passing':>8} {'failing':>8} {'invalid':>8}")
    name = phase = None
    for line in proc.stdout.splitlines():
        if line.startswith("test/") and "::" in line:
            name = line.split("::", 1)[1].rstrip(":")
        elif "phase" in line:
            phase = line
        found = re.search(r"(\d+) passing, (\d+) failing, and (\d+) invalid", line)
        if name and found and phase and "generate phase" in phase:
            print(f"{name:<75} {found.group(1):>8} {found.group(2):>8} {found.group(3):>8}")
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
