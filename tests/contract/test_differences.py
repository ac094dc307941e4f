"""Our side of each deliberate difference from json-server (differences.py), on our API alone."""

from __future__ import annotations

import itertools
from typing import Any

import httpx2
import pytest

from tests.contract import compare, differences, servers
from tests.contract.compare import Call, Pair

RECORD = {"patientID": "N100", "name": "Nadia Neu", "age": 40}


def ours(pair: Pair, call: Call) -> httpx2.Response:
    return pair.send(pair.ours, call)


def error_code(response: httpx2.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body.get("detail"), str), body
    return body.get("error_code")


def raw(method: str, target: str, content_type: str | None, body: bytes | None) -> Call:
    headers: tuple[tuple[str, str], ...] = (("Origin", compare.ORIGIN),)
    if content_type is not None:
        headers = (*headers, ("Content-Type", content_type))
    return Call(method, target, headers, body)


def test_the_table_names_each_difference_once() -> None:
    topics = [difference.topic for difference in differences.DIFFERENCES]
    assert len(topics) == len(set(topics))
    assert all(d.json_server and d.ours and d.why for d in differences.DIFFERENCES)


def test_not_found_body_is_our_error_object(read_pair: Pair) -> None:
    response = ours(read_pair, compare.get("/patients/40"))

    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"  # differences.NOT_FOUND_BODY


@pytest.mark.parametrize(
    ("query", "why"),
    [
        pytest.param("name_like=(", "unterminated group", id="invalid like regex"),
        pytest.param("name_like=a&name_like=%5B", "one of several patterns", id="second regex"),
        pytest.param("_sort=age&_sort=name", "repeated sort", id="repeated sort"),
    ],
)
def test_invalid_queries_are_400_invalid_query(read_pair: Pair, query: str, why: str) -> None:
    response = ours(read_pair, compare.get(f"/patients?{query}"))

    assert response.status_code == 400, why  # differences.INVALID_QUERIES
    assert error_code(response) == "INVALID_QUERY"


@pytest.mark.parametrize(
    ("call", "status"),
    [
        pytest.param(
            raw("POST", "/patients", "application/json", b'{"name": "bad",'), 400, id="malformed"
        ),
        pytest.param(compare.send_json("POST", "/patients", "hello"), 400, id="a JSON scalar"),
        pytest.param(
            compare.send_json("POST", "/patients", {"name": "No patientID"}), 400, id="invalid"
        ),
        pytest.param(
            compare.send_json("POST", "/patients", {**RECORD, "age": "52"}), 400, id="string age"
        ),
        pytest.param(
            compare.send_json("POST", "/patients", {**RECORD, "id": 1}), 409, id="duplicate id"
        ),
        pytest.param(
            compare.send_json("POST", "/patients", {**RECORD, "patientID": "P001"}),
            409,
            id="duplicate patientID",
        ),
        pytest.param(
            compare.send_json("PUT", "/patients/2", {**RECORD, "patientID": "P001"}),
            409,
            id="PUT to a taken patientID",
        ),
        pytest.param(
            compare.send_json("PATCH", "/patients/2", {"name": ""}), 400, id="PATCH to empty name"
        ),
        pytest.param(raw("PUT", "/patients/2", "application/json", b"{"), 400, id="PUT malformed"),
    ],
)
def test_invalid_writes_are_json_errors(write_pair: Pair, call: Call, status: int) -> None:
    response = ours(write_pair, call)

    assert response.status_code == status  # differences.INVALID_WRITES
    assert error_code(response)
    assert ours(write_pair, compare.get("/patients/2")).json()["patientID"] == "P002"


@pytest.mark.parametrize(
    ("call", "status"),
    [
        pytest.param(raw("POST", "/patients", "text/plain", b"{}"), 415, id="text/plain"),
        pytest.param(
            raw("POST", "/patients", "application/x-www-form-urlencoded", b"name=Form+User"),
            415,
            id="form",
        ),
        pytest.param(raw("POST", "/patients", None, None), 415, id="no body"),
        pytest.param(compare.send_json("POST", "/patients", [RECORD]), 400, id="an array"),
    ],
)
def test_non_json_bodies_are_refused(write_pair: Pair, call: Call, status: int) -> None:
    response = ours(write_pair, call)

    assert response.status_code == status  # differences.NON_JSON_BODIES
    assert error_code(response)


@pytest.mark.parametrize("body_id", [pytest.param(v, id=repr(v)) for v in ("abc", "52", 1.5, -1)])
def test_ids_in_bodies_must_be_positive_whole_numbers(write_pair: Pair, body_id: Any) -> None:
    response = ours(write_pair, compare.send_json("POST", "/patients", {**RECORD, "id": body_id}))

    assert response.status_code == 400  # differences.BODY_IDS
    assert error_code(response)


def test_ids_are_never_reused(write_pair: Pair) -> None:
    assert ours(write_pair, Call("DELETE", "/patients/50")).status_code == 200
    response = ours(write_pair, compare.send_json("POST", "/patients", RECORD))

    assert response.json()["id"] == 51  # differences.IDS_NEVER_REUSED


def test_jsonp_callback_is_ignored(read_pair: Pair) -> None:
    response = ours(read_pair, compare.get("/patients/1?callback=cb"))

    assert response.headers["content-type"].startswith("application/json")  # differences.JSONP
    assert response.json()["id"] == 1


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("/db", 404, id="db"),  # differences.DB_DUMP
        pytest.param("/patients/1/patients", 404, id="nested route"),  # NESTED_ROUTES
    ],
)
def test_routes_json_server_has_and_we_do_not(read_pair: Pair, target: str, status: int) -> None:
    assert ours(read_pair, compare.get(target)).status_code == status


def test_home_page_is_not_json_servers(read_pair: Pair) -> None:
    response = ours(read_pair, compare.get("/"))

    assert "json-server" not in response.text.lower()  # differences.HOME_PAGE


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "/patients/1"),
        ("PUT", "/patients"),
        ("PATCH", "/patients"),
        ("DELETE", "/patients"),
    ],
)
def test_a_method_a_route_does_not_allow_is_405(read_pair: Pair, method: str, target: str) -> None:
    response = ours(read_pair, compare.send_json(method, target, RECORD))

    assert response.status_code == 405  # differences.WRONG_METHOD
    assert "GET" in response.headers["allow"]


def test_method_override_header_is_ignored(write_pair: Pair) -> None:
    call = compare.send_json("POST", "/patients/2", {"name": "Overridden"})
    call = Call(
        call.method, call.target, (*call.headers, ("X-HTTP-Method-Override", "PATCH")), call.body
    )

    assert ours(write_pair, call).status_code == 405  # differences.METHOD_OVERRIDE
    assert ours(write_pair, compare.get("/patients/2")).json()["name"] == "Jane Smith"


@pytest.mark.parametrize("query", ["_embed=visits", "_expand=doctor", "_embed=visits&_limit=1"])
def test_embed_and_expand_are_ignored(read_pair: Pair, query: str) -> None:
    plain = ours(read_pair, compare.get("/patients/1")).json()
    item = ours(read_pair, compare.get(f"/patients/1?{query}")).json()
    listed = ours(read_pair, compare.get(f"/patients?id=1&{query}")).json()

    assert item == plain  # differences.EMBED_EXPAND
    assert listed == [plain]


@pytest.mark.parametrize("target", ["/patients/", "/patients?x=1"])
def test_location_is_always_the_records_url(write_pair: Pair, target: str) -> None:
    response = ours(write_pair, compare.send_json("POST", target, RECORD))

    assert response.status_code == 201
    assert response.headers["location"] == f"{write_pair.ours.base_url}/patients/51"


def test_response_format(read_pair: Pair) -> None:
    response = ours(read_pair, Call("GET", "/patients", (("Accept-Encoding", "gzip"),)))

    assert response.headers["cache-control"] == "no-store"  # differences.RESPONSE_FORMAT
    assert "x-powered-by" not in response.headers
    assert response.headers["content-encoding"] == "gzip"
    assert "\n" not in response.text
    assert response.text.startswith('[{"')


def test_no_cors_headers_without_an_origin(read_pair: Pair) -> None:
    response = ours(read_pair, compare.get("/patients/1", origin=False))

    assert "access-control-allow-credentials" not in response.headers  # CORS_WITHOUT_ORIGIN
    assert "access-control-allow-origin" not in response.headers


def test_the_documented_table_lists_exactly_these_differences() -> None:
    """differences.py is the source; docs/compatibility.md shows it to people."""
    page = (servers.REPO / "docs" / "compatibility.md").read_text(encoding="utf-8")
    table = page[page.index("| topic | json-server 0.17.4 | here | why |") :].splitlines()
    rows = itertools.takewhile(lambda line: line.startswith("| "), table[2:])  # after | --- |
    readme_topics = [row.split("|")[1].strip() for row in rows]
    listed = [
        value.topic
        for value in vars(differences).values()
        if isinstance(value, differences.Difference)
    ]

    assert sorted(readme_topics) == sorted(listed)
