#!/usr/bin/env python3
"""Fuzz every parser hostile input reaches; prints inputs, crashes, hangs per target.

    scripts/bench fuzz                      # 100,000 inputs per target
    scripts/bench fuzz -n 5000 -t mime,rules --seed 7

Targets and what counts as a crash, hang or wrong answer: test/support/fuzzing.py
and docs/security.md.  Exit status 1 if any target is not clean.
"""

from __future__ import annotations

import argparse
import sys

from support.fuzzing import TARGETS, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--inputs", type=int, default=100_000, help="inputs per target (default 100000)")
    parser.add_argument("-t", "--targets", default=",".join(TARGETS), help="comma-separated, of: " + ", ".join(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000, help="inputs between two liveness checks")
    args = parser.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
