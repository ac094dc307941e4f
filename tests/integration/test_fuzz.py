"""Property-based hostile input: no 5xx, and a refused write changes nothing."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.integration.helpers import SAMPLE

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",
            "'; DROP TABLE patients; --",
            "%",
            "_",
            "\\",
            "(",
            "[",
            "*",
            "a" * 300,
            "Ωmega",
            "🙂",
            "1e400",
            "NaN",
            "-0",
            "0x10",
            "\u202e",
            "null",
        ]
    ),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(HOSTILE_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["id", "patientID", "name", "age", "gender", "medicalCondition", "lastVisit", "extra"]
)
BODIES = st.one_of(
    st.dictionaries(st.one_of(FIELDS, HOSTILE_TEXT), JSON_VALUES, max_size=8),
    JSON_VALUES,
)
QUERY_KEYS = st.one_of(
    FIELDS,
    HOSTILE_TEXT,
    st.sampled_from(["q", "_sort", "_order", "_page", "_limit", "_start", "_end", "_embed"]),
    st.builds(
        lambda field, op: f"{field}_{op}", FIELDS, st.sampled_from(["gte", "lte", "ne", "like"])
    ),
)


def snapshot(client: TestClient) -> Any:
    return client.get("/patients").json()


def test_hostile_write_bodies_never_cause_a_5xx_or_a_partial_change(
    seeded_client: TestClient,
) -> None:
    target = f"/patients/{SAMPLE[0]['id']}"

    @FUZZ
    @given(body=BODIES, method=st.sampled_from(["POST", "PUT", "PATCH"]))
    def check(body: Any, method: str) -> None:
        before = snapshot(seeded_client)
        path = "/patients" if method == "POST" else target
        response = seeded_client.request(
            method, path, content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert response.status_code < 500, response.text
        assert "error_code" in response.json() or response.status_code in (200, 201)
        if response.status_code >= 400:
            assert snapshot(seeded_client) == before
        elif method == "POST":
            seeded_client.delete(f"/patients/{response.json()['id']}")

    check()


def test_hostile_query_strings_never_cause_a_5xx(seeded_client: TestClient) -> None:
    @FUZZ
    @given(pairs=st.lists(st.tuples(QUERY_KEYS, HOSTILE_TEXT), max_size=5))
    def check(pairs: list[tuple[str, str]]) -> None:
        query_string = urllib.parse.urlencode(pairs, errors="surrogatepass")
        response = seeded_client.get(f"/patients?{query_string}")
        assert response.status_code in (200, 400), (query_string, response.text)

    check()
    assert len(snapshot(seeded_client)) == len(SAMPLE)
