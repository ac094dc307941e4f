"""The query language against PostgreSQL, on the sample data. The differential comparison with a
real json-server lives in tests/contract; these pin our own decisions and the SQL's safety."""

from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from api import query
from tests.integration.conftest import client_for
from tests.integration.helpers import SAMPLE


def ids(client: TestClient, query_string: str) -> list[int]:
    response = client.get(f"/patients?{query_string}")
    assert response.status_code == 200, response.text
    return [record["id"] for record in response.json()]


def sample_ids(keep: Any) -> list[int]:
    return [record["id"] for record in SAMPLE if keep(record)]


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        pytest.param("gender=Female", sample_ids(lambda r: r["gender"] == "Female"), id="equality"),
        pytest.param("age=45", sample_ids(lambda r: r["age"] == 45), id="a number as text"),
        pytest.param("age=045", [], id="not numeric comparison"),
        pytest.param("id=3&id=1", [1, 3], id="OR, in storage order"),
        pytest.param("nonexistent=foo", sample_ids(lambda r: True), id="unknown field ignored"),
        pytest.param("nonexistent_ne=foo", [], id="unknown field with an operator: nothing"),
        pytest.param(
            "insurance.provider=Aetna", sample_ids(lambda r: "insurance" in r), id="a nested path"
        ),
        pytest.param(
            "age_gte=60&age_lte=65",
            sample_ids(lambda r: 60 <= r["age"] <= 65),
            id="a numeric range",
        ),
        pytest.param("age_gte=0x3C", sample_ids(lambda r: r["age"] >= 60), id="Number() hex"),
        pytest.param(
            "name_like=^j",
            sample_ids(lambda r: r["name"].lower().startswith("j")),
            id="caseless regex",
        ),
        pytest.param(
            "q=ÁLVAREZ",
            sample_ids(lambda r: "álvarez" in r["name"].lower()),
            id="q is caseless for non-ASCII too",
        ),
        pytest.param("q=aetna", sample_ids(lambda r: "insurance" in r), id="q searches nested"),
        pytest.param("q=100%25", [], id="a percent sign is literal in q"),
        pytest.param("q=_", [], id="an underscore is literal in q"),
    ],
)
def test_filters(seeded_client: TestClient, query_string: str, expected: list[int]) -> None:
    assert ids(seeded_client, query_string) == expected


def test_sort_is_by_code_point_and_stable(seeded_client: TestClient) -> None:
    by_name = sorted(SAMPLE, key=lambda record: record["name"])
    assert ids(seeded_client, "_sort=name") == [record["id"] for record in by_name]


def test_descending_sort_keeps_ties_in_storage_order(seeded_client: TestClient) -> None:
    expected = sorted(SAMPLE, key=lambda record: -record["age"])  # Python's sort is stable too
    assert ids(seeded_client, "_sort=age&_order=desc") == [record["id"] for record in expected]


def test_a_page_has_its_total_and_links(seeded_client: TestClient) -> None:
    response = seeded_client.get("/patients?_page=2&_limit=5")

    assert [record["id"] for record in response.json()] == [r["id"] for r in SAMPLE[5:10]]
    assert response.headers["x-total-count"] == str(len(SAMPLE))
    assert response.headers["access-control-expose-headers"] == "X-Total-Count, Link"
    last = -(-len(SAMPLE) // 5)
    assert response.headers["link"] == (
        '<http://testserver/patients?_page=1&_limit=5>; rel="first", '
        '<http://testserver/patients?_page=1&_limit=5>; rel="prev", '
        '<http://testserver/patients?_page=3&_limit=5>; rel="next", '
        f'<http://testserver/patients?_page={last}&_limit=5>; rel="last"'
    )


def test_negative_slices_count_from_the_end(seeded_client: TestClient) -> None:
    assert ids(seeded_client, "_start=-3&_end=1000") == [r["id"] for r in SAMPLE[-3:]]
    assert ids(seeded_client, "_limit=-34") == [r["id"] for r in SAMPLE[:-34]]


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param("name_like=(", id="an invalid regular expression"),
        pytest.param("_sort=age&_sort=name", id="a repeated _sort"),
    ],
)
def test_queries_json_server_crashed_on_are_a_400(
    seeded_client: TestClient, query_string: str
) -> None:
    response = seeded_client.get(f"/patients?{query_string}")

    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_QUERY"


@pytest.mark.parametrize(
    "query_string",
    [
        "name=x%27%3B%20DROP%20TABLE%20patients%3B%20--",
        "x%27%3B%20DROP%20TABLE%20patients%3B%20--=1",
        "_sort=name%22%20DESC%3B%20DROP%20TABLE%20patients",
        "q=%27%20OR%201%3D1%20--",
        "name_like=.*%27%29%3B%20DROP%20TABLE%20patients%3B%20--",
        "age_gte=1%20OR%201%3D1",
    ],
)
def test_injection_attempts_are_harmless(seeded_client: TestClient, query_string: str) -> None:
    response = seeded_client.get(f"/patients?{query_string}")

    assert response.status_code in (200, 400)
    assert len(seeded_client.get("/patients").json()) == len(SAMPLE)


def many(key: str, count: int) -> str:
    return "&".join(f"{key}={number}" for number in range(1, count + 1))


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param(many("id", query.MAX_PARAMETERS + 1), id="values of one key"),
        pytest.param("_page=" + "9" * 5000, id="a 5000-digit page, once a 500"),
        pytest.param("_start=" + "9" * 5000 + "&_end=1", id="a 5000-digit start"),
        pytest.param("_sort=" + ",".join(f"f{n}" for n in range(400)), id="400 sort keys"),
        pytest.param(many("f_like", query.MAX_PATTERNS + 1), id="one pattern too many"),
        pytest.param("&".join(f"f{n}=1" for n in range(query.MAX_FILTERS + 1)), id="filters"),
        pytest.param("name=" + "a" * (query.MAX_TEXT_LENGTH + 1), id="a long value"),
        pytest.param("name_like=(.*){1,100}x", id="a regex that took the whole statement timeout"),
    ],
)
def test_queries_past_a_limit_are_a_400_with_the_limit(
    seeded_client: TestClient, query_string: str
) -> None:
    response = seeded_client.get(f"/patients?{query_string}")

    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_QUERY"
    assert "at most" in response.json()["detail"]


def test_a_thousand_values_of_one_key_are_one_bind_parameter(seeded_client: TestClient) -> None:
    wanted = [record["id"] for record in SAMPLE[:3]]
    listed = "&".join(f"id={n}" for n in [*wanted, *range(10**6, 10**6 + 997)])
    unlisted = "&".join(f"id_ne={n}" for n in [*wanted, *range(10**6, 10**6 + 997)])

    assert ids(seeded_client, listed) == wanted, "once 1000 ORs, 1000 parameters"
    assert ids(seeded_client, unlisted) == [r["id"] for r in SAMPLE[3:]]


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        pytest.param("age=45&age=045", sample_ids(lambda r: r["age"] == 45), id="one impossible"),
        pytest.param("age=045&age=4.5", [], id="only impossible values match nothing"),
        pytest.param("age_ne=045", sample_ids(lambda r: True), id="ne an impossible value"),
        pytest.param(
            "age_ne=45&age_ne=045", sample_ids(lambda r: r["age"] != 45), id="ne with one"
        ),
        pytest.param(
            "lastVisit=2024-02-30&lastVisit=" + SAMPLE[0]["lastVisit"],
            sample_ids(lambda r: r["lastVisit"] == SAMPLE[0]["lastVisit"]),
            id="dates, one impossible",
        ),
        pytest.param(
            "insurance.provider_ne=Aetna&insurance.provider_ne=x",
            sample_ids(lambda r: "insurance" in r and r["insurance"]["provider"] != "Aetna"),
            id="ne on a path skips records without it",
        ),
    ],
)
def test_lists_of_values_keep_json_servers_semantics(
    seeded_client: TestClient, query_string: str, expected: list[int]
) -> None:
    assert ids(seeded_client, query_string) == expected


@pytest.mark.parametrize(
    ("stored", "query_string", "found"),
    [
        pytest.param("1" + "0" * 400, "big_gte=1e308", True, id="above the largest double"),
        pytest.param("-1" + "0" * 400, "big_lte=-1e308", True, id="below the lowest double"),
        pytest.param("1" + "0" * 400, "big_lte=Infinity", True, id="JSON.parse makes Infinity"),
        pytest.param("1" + "0" * 400, "big_gte=0x" + "f" * 300, True, id="both Infinity"),
        pytest.param("1.7976931348623157e308", "big_gte=1.7976931348623157e308", True, id="max"),
    ],
)
def test_range_on_numbers_no_double_holds_cannot_overflow(
    client: TestClient, stored: str, query_string: str, found: bool
) -> None:
    body = '{"patientID": "BIG", "name": "Big", "big": %s}' % stored  # noqa: UP031 (raw JSON)
    created = client.post("/patients", content=body, headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text

    assert ids(client, query_string) == ([created.json()["id"]] if found else [])


def test_range_on_a_number_below_the_smallest_double_cannot_underflow(
    migrated_database_url: str,
) -> None:
    """Python's JSON reads 1e-400 as 0.0, so only a row written by SQL holds one."""
    with client_for(migrated_database_url) as client:
        created = client.post("/patients", json={"patientID": "TINY", "name": "Tiny"}).json()
        with psycopg.connect(migrated_database_url) as connection:
            connection.execute("UPDATE patients SET extra = '{\"tiny\": 1e-400}'")

        assert ids(client, "tiny_lte=0") == [created["id"]], "JavaScript reads it as 0"
        assert ids(client, "tiny_gte=1e-300") == []
