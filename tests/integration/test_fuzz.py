"""Property-based hostile input: no 5xx, and a refused write changes nothing."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.types import Message

from api import query
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


def asgi_get(client: TestClient, query_string: str) -> tuple[int, bytes]:
    """GET /patients?query_string straight into the running app, in the client's event loop."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/patients",
        "raw_path": b"/patients",
        "root_path": "",
        "query_string": query_string.encode(),
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    assert client.portal is not None, "the client runs (a `with` block)"
    client.portal.call(client.app, scope, receive, send)
    return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])


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


HUGE_NUMBERS = st.one_of(
    st.integers(1, 5000).map(lambda digits: "9" * digits),
    st.integers(-(10**400), 10**400).map(str),
    st.sampled_from(["1e400", "-1e400", "1e-400", "0x" + "f" * 300, "Infinity", "-0"]),
)
LONG_TEXT = st.builds(
    lambda character, length: character * length,
    st.characters(codec="utf-8"),
    st.integers(query.MAX_TEXT_LENGTH - 10, query.MAX_TEXT_LENGTH + 10),
)
WIDE_KEYS = st.one_of(QUERY_KEYS, st.sampled_from(["big", "big_gte", "big_lte", "big_like"]))
WIDE_VALUES = st.one_of(HOSTILE_TEXT, HUGE_NUMBERS, LONG_TEXT)
# (key, value, repeats): one key's value repeated up to past the parameter limit.
GROUPS = st.tuples(WIDE_KEYS, WIDE_VALUES, st.integers(1, query.MAX_PARAMETERS + 100))
SORTS = st.builds(
    lambda fields, count: ",".join(fields * count),
    st.lists(st.sampled_from(["age", "name", "big", "insurance.plan", "x.y", ""]), min_size=1),
    st.integers(1, 100),
)


def test_wide_query_strings_never_cause_a_5xx(seeded_client: TestClient) -> None:
    """Many keys, long values and huge numbers: at and past every limit of docs/query-limits.md,
    with a stored number no double holds."""
    huge = '{"patientID": "HUGE", "name": "Huge", "big": 1%s}' % ("0" * 400)
    created = seeded_client.post(
        "/patients", content=huge, headers={"content-type": "application/json"}
    )
    assert created.status_code == 201, created.text

    @FUZZ
    @given(
        groups=st.lists(GROUPS, max_size=4),
        slicing=st.lists(
            st.tuples(st.sampled_from(["_page", "_limit", "_start", "_end"]), HUGE_NUMBERS),
            max_size=3,
        ),
        sort=st.none() | SORTS,
    )
    def check(
        groups: list[tuple[str, str, int]], slicing: list[tuple[str, str]], sort: str | None
    ) -> None:
        pairs = [(key, value) for key, value, repeats in groups for _ in range(repeats)]
        pairs += slicing + ([("_sort", sort)] if sort is not None else [])
        query_string = urllib.parse.urlencode(pairs)
        # Through the ASGI app: httpx refuses URLs past 64 KiB before sending them.
        status, body = asgi_get(seeded_client, query_string)
        assert status in (200, 400, 414), (query_string[:300], body[:300])

    check()
    assert len(snapshot(seeded_client)) == len(SAMPLE) + 1
