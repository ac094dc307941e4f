"""Seeded random write sequences compared with json-server, each on fresh copies of the fixture.

CONTRACT_SEED (shared with the random reads) and CONTRACT_WRITE_CASES repeat a run; a failure
names its seed, sequence and step: rerun it with
`CONTRACT_SEED=<seed> pytest tests/contract/test_random_writes.py -k 'sequence-<n>'`.
"""

from __future__ import annotations

import collections
import os

import pytest

from tests.contract import queries, writes
from tests.contract.compare import Call, Pair

SEED = int(os.environ.get("CONTRACT_SEED", queries.DEFAULT_SEED))
COUNT = int(os.environ.get("CONTRACT_WRITE_CASES", writes.DEFAULT_SEQUENCES))
SEQUENCES = writes.random_sequences(SEED, COUNT)


@pytest.mark.parametrize(
    ("number", "calls"),
    [pytest.param(n, calls, id=f"sequence-{n:02d}") for n, calls in enumerate(SEQUENCES)],
)
def test_random_write_sequence(write_pair: Pair, number: int, calls: list[Call]) -> None:
    context = f"CONTRACT_SEED={SEED} CONTRACT_WRITE_CASES={COUNT} sequence-{number:02d}"
    for step, call in enumerate(calls, start=1):
        write_pair.assert_same(call, f"{context}, step {step} of {len(calls)}: ")


def test_random_write_sequences_are_reproducible_and_varied() -> None:
    assert writes.random_sequences(SEED, COUNT) == SEQUENCES
    calls = [call for sequence in SEQUENCES for call in sequence]
    methods = collections.Counter(call.method for call in calls)
    assert set(methods) == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert methods["GET"] > COUNT * 8, methods
    bodies = b"".join(call.body or b"" for call in calls)
    for feature in (b'"id": ', b'"ward": ', b'"insurance": ', b'"patientID": "W'):
        assert feature in bodies, feature
    assert any(call.target.startswith("/patients?ward") for call in calls)
    assert any(call.target == f"/patients/{writes.MISSING_ID}" for call in calls)
