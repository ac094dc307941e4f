"""The harness itself: the pinned json-server answers as the reference says, and the comparison
finds no difference between two json-servers on different ports but catches real ones."""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator

import httpx2
import pytest

from tests.contract import compare, jsonserver, servers
from tests.contract.compare import Call, Pair

FIXTURE = json.loads(servers.FIXTURE_DB_JSON.read_text(encoding="utf-8"))["patients"]
FILE_ORDER = [record["id"] for record in FIXTURE]


@pytest.fixture(scope="module")
def twins(
    json_server_bin: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    """Two json-servers on copies of the fixture: the harness must find them identical."""
    with _twins(json_server_bin, tmp_path_factory.mktemp("twins")) as pair:
        yield pair


@pytest.fixture
def fresh_twins(json_server_bin: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[Pair]:
    with _twins(json_server_bin, tmp_path) as pair:
        yield pair


@contextlib.contextmanager
def _twins(bin_js: pathlib.Path, workdir: pathlib.Path) -> Iterator[Pair]:
    (workdir / "a").mkdir()
    (workdir / "b").mkdir()
    with (
        jsonserver.serving(bin_js, servers.FIXTURE_DB_JSON, workdir / "a") as first,
        jsonserver.serving(bin_js, servers.FIXTURE_DB_JSON, workdir / "b") as second,
    ):
        pair = Pair(first, second)
        yield pair
        pair.close()


def reference_get(pair: Pair, target: str) -> httpx2.Response:
    return pair.send(pair.reference, compare.get(target))


def ids(response: httpx2.Response) -> list[int]:
    return [record["id"] for record in response.json()]


def test_json_server_lists_the_fixture_in_file_order_not_id_order(twins: Pair) -> None:
    response = reference_get(twins, "/patients")

    assert response.json() == FIXTURE
    assert ids(response) == FILE_ORDER != sorted(FILE_ORDER)
    assert "x-total-count" not in response.headers


def test_json_server_paginates_with_the_reference_link_format(twins: Pair) -> None:
    response = reference_get(twins, "/patients?_page=1")
    base = f"{twins.reference.base_url}/patients"

    assert ids(response) == FILE_ORDER[:10]
    assert response.headers["x-total-count"] == "40"
    assert response.headers["access-control-expose-headers"] == "X-Total-Count, Link"
    assert response.headers["link"] == (
        f'<{base}?_page=1>; rel="first", <{base}?_page=2>; rel="next", <{base}?_page=4>; rel="last"'
    )


def test_json_server_sends_an_empty_link_past_the_last_page(twins: Pair) -> None:
    response = reference_get(twins, "/patients?_page=5")

    assert response.json() == []
    assert response.headers["link"] == ""
    assert response.headers["x-total-count"] == "40"


def test_json_server_matches_numbers_by_their_text(twins: Pair) -> None:
    assert ids(reference_get(twins, "/patients?age=45")) == [3, 1, 15, 30, 37]
    assert reference_get(twins, "/patients?age=045").json() == []


def test_json_server_still_has_the_quirks_we_left_out(twins: Pair) -> None:
    crash = reference_get(twins, "/patients?name_like=(")
    missing = reference_get(twins, "/patients/40")

    assert crash.status_code == 500
    assert crash.headers["content-type"].startswith("text/html")
    assert (missing.status_code, missing.json()) == (404, {})


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(compare.get("/patients?_page=2&_limit=7&_sort=name"), id="a page with links"),
        pytest.param(compare.get("/patients/9"), id="an item"),
        pytest.param(compare.get("/patients/40"), id="a 404"),
        pytest.param(
            Call(
                "OPTIONS",
                "/patients/1",
                (
                    ("Origin", compare.ORIGIN),
                    ("Access-Control-Request-Method", "PUT"),
                    ("Access-Control-Request-Headers", "content-type,authorization"),
                ),
            ),
            id="a preflight",
        ),
        pytest.param(
            compare.send_json("POST", "/patients", {"patientID": "T1", "name": "Twin"}),
            id="a POST with a Location",
        ),
    ],
)
def test_two_json_servers_on_different_ports_compare_equal(twins: Pair, call: Call) -> None:
    assert twins.reference.base_url != twins.ours.base_url
    twins.assert_same(call)


def test_the_comparison_shows_the_request_and_both_answers(fresh_twins: Pair) -> None:
    fresh_twins.send(fresh_twins.ours, compare.Call("DELETE", "/patients/1"))

    with pytest.raises(AssertionError) as failure:
        fresh_twins.assert_same(compare.get("/patients?_limit=3"))

    message = str(failure.value)
    assert "GET /patients?_limit=3\n    Origin: http://localhost:5173" in message
    assert "differ in: body" in message
    assert "ids [3, 1, 2]" in message
    assert "ids [3, 2, 7]" in message
    assert "first different record, position 1:" in message


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, True, id="key order ignored"),
        pytest.param([1, 2], [2, 1], False, id="array order kept"),
        pytest.param(True, 1, False, id="a boolean is not a number"),
        pytest.param([False], [0], False, id="nor inside arrays"),
        pytest.param(2, 2.0, True, id="2 and 2.0 are the same JavaScript number"),
        pytest.param(None, {}, False, id="null is not an empty object"),
        pytest.param({"a": None}, {}, False, id="a null key is not a missing key"),
    ],
)
def test_same_json(left: object, right: object, same: bool) -> None:
    assert compare.same_json(left, right) is same
