"""A short seeded slice of every fuzz target (the long run is bench/fuzz.py).

Same targets, oracles and liveness checks as the bench, with a few hundred
inputs each, so a regression a fuzzer found once stays found.
"""

from __future__ import annotations

import pytest

from support.fuzzing import TARGETS, run

# inputs per target: each slice runs well under a few seconds on a loaded machine
SLICE = {
    "mime": 1000,
    "rules": 5000,
    "newemail": 300,
    "ini": 2000,
    "doveauth": 1500,
    "lastlogin": 1500,
    "metadata": 1500,
    "smtp-outgoing": 500,
    "smtp-incoming": 500,
}


def test_every_target_has_a_slice():
    assert set(SLICE) == set(TARGETS)


@pytest.mark.parametrize("name", SLICE)
def test_fuzz_slice(name):
    result = run(TARGETS[name](), SLICE[name], seed=13, batch=100)
    assert result.inputs == SLICE[name]
    assert result.clean, result.examples
