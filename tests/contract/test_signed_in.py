"""json-server compatibility holds for signed-in requests: the fixed reads, a share of the random
reads and the random write sequences again, with our API in AUTH_MODE=entra and every request to
it carrying an administrator's bearer token (json-server, the reference, needs none)."""

from __future__ import annotations

import pytest

from tests.contract import compare, test_random_reads, test_random_writes, test_reads
from tests.contract.compare import Call, Pair

QUERIES = [
    *test_reads.EQUALITY,
    *test_reads.RANGES,
    *test_reads.NOT_EQUAL,
    *test_reads.LIKE,
    *test_reads.FULL_TEXT,
    *test_reads.SORTING,
    *test_reads.PAGES,
    *test_reads.SLICES,
    *test_reads.PARSING,
    *test_reads.COMBINATIONS,
]
RANDOM_QUERIES = test_random_reads.QUERIES[:100]


@pytest.mark.parametrize("query", QUERIES)
def test_signed_in_queries(signed_in_read_pair: Pair, query: str) -> None:
    signed_in_read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("target", [*test_reads.ITEMS, "/patients"])
def test_signed_in_item_route_and_whole_list_reads(signed_in_read_pair: Pair, target: str) -> None:
    signed_in_read_pair.assert_same(compare.get(target))


@pytest.mark.parametrize(
    "query", [pytest.param(query, id=f"case-{n:04d}") for n, query in enumerate(RANDOM_QUERIES)]
)
def test_signed_in_random_queries(signed_in_read_pair: Pair, query: str) -> None:
    signed_in_read_pair.assert_same(
        compare.get(f"/patients?{query}"), f"{test_random_reads.SEED}: "
    )


@pytest.mark.parametrize(
    "calls",
    [
        pytest.param(calls, id=f"sequence-{n:02d}")
        for n, calls in enumerate(test_random_writes.SEQUENCES)
    ],
)
def test_signed_in_write_sequences(signed_in_write_pair: Pair, calls: list[Call]) -> None:
    for step, call in enumerate(calls, start=1):
        signed_in_write_pair.assert_same(call, f"step {step} of {len(calls)}: ")


def test_the_pair_really_signs_in(signed_in_read_pair: Pair) -> None:
    """Without the token our API refuses: the runs above went through sign-in."""
    anonymous = Pair(signed_in_read_pair.reference, signed_in_read_pair.ours)
    try:
        response = anonymous.send(anonymous.ours, compare.get("/patients/1"))
    finally:
        anonymous.close()
    assert response.status_code == 401
    me = signed_in_read_pair.send(signed_in_read_pair.ours, compare.get("/me")).json()
    assert (me["anonymous"], me["isAdmin"]) == (False, True)
