"""Seeded random queries compared with json-server; CONTRACT_SEED and CONTRACT_CASES repeat a run.

A failure names its seed and case; rerun it with
`CONTRACT_SEED=<seed> pytest tests/contract/test_random_reads.py -k 'case-<n>'`.
"""

from __future__ import annotations

import os

import pytest

from tests.contract import compare, queries
from tests.contract.compare import Pair

SEED = int(os.environ.get("CONTRACT_SEED", queries.DEFAULT_SEED))
COUNT = int(os.environ.get("CONTRACT_CASES", queries.DEFAULT_CASES))
QUERIES = queries.random_queries(SEED, COUNT)


@pytest.mark.parametrize(
    ("number", "query"),
    [pytest.param(n, query, id=f"case-{n:04d}") for n, query in enumerate(QUERIES)],
)
def test_random_query(read_pair: Pair, number: int, query: str) -> None:
    context = f"CONTRACT_SEED={SEED} CONTRACT_CASES={COUNT} case-{number:04d}\n"
    read_pair.assert_same(compare.get(f"/patients?{query}"), context)


def test_random_queries_are_reproducible_and_varied() -> None:
    again = queries.random_queries(SEED, COUNT)
    assert again == QUERIES
    assert len(set(QUERIES)) > COUNT * 0.9
    for feature in ("_like=", "_gte=", "_lte=", "_ne=", "q=", "_sort=", "_page=", "_end="):
        assert any(feature in query for query in QUERIES), feature
