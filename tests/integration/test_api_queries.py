"""The query language against PostgreSQL, on the sample data. The differential comparison with a
real json-server lives in tests/contract; these pin our own decisions and the SQL's safety."""

from typing import Any

import pytest
from starlette.testclient import TestClient

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
