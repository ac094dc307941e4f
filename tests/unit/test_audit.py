import datetime
from typing import Any

import pytest

from api import audit, paging


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(None, {"id": 1, "age": 3}, {"id": {"before": None, "after": 1},
                                                 "age": {"before": None, "after": 3}},
                     id="a create shows every field"),
        pytest.param({"age": 3, "name": "A"}, {"age": 4, "name": "A"},
                     {"age": {"before": 3, "after": 4}}, id="only what changed"),
        pytest.param({"age": 3}, {"age": 3, "ward": None},
                     {"ward": {"before": None, "after": None}}, id="a field added as null"),
        pytest.param({"age": 3, "ward": "B"}, {"age": 3}, {"ward": {"before": "B", "after": None}},
                     id="a field removed"),
        pytest.param({"vip": 1}, {"vip": True}, {"vip": {"before": 1, "after": True}},
                     id="1 and true are different JSON"),
        pytest.param({"tags": ["a", "b"]}, {"tags": ["a", "b"]}, {}, id="equal nested values"),
        pytest.param({"id": 1}, None, {"id": {"before": 1, "after": None}}, id="a delete"),
    ],
)  # fmt: skip
def test_changes_lists_each_field_that_differs(
    before: dict[str, Any] | None, after: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    assert audit.changes(before, after) == expected


def test_parse_reads_every_filter_and_the_page() -> None:
    wanted = audit.parse(
        {
            "patientId": ["7"],
            "userId": ["3"],
            "action": ["update"],
            "since": ["2026-12-01"],
            "until": ["2026-12-02T10:00:00+01:00"],
            "_page": ["2"],
            "_limit": ["10"],
        }
    )
    assert wanted.filters == (
        ("patient_id", 7),
        ("user_id", 3),
        ("action", "update"),
        ("since", datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)),
        ("until", datetime.datetime(2026, 12, 2, 9, 0, tzinfo=datetime.UTC)),
    )
    assert wanted.page == paging.Page(2, 10)
    assert wanted.page.offset == 10


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"patientId": ["x"]}, "patientId", id="a patient id that is no number"),
        pytest.param({"patientId": ["9" * 20]}, "patientId", id="a patient id too large"),
        pytest.param({"userId": ["-1"]}, "userId", id="a negative user id"),
        pytest.param({"action": ["read"]}, "action", id="an unknown action"),
        pytest.param({"since": ["last week"]}, "since", id="a time in words"),
        pytest.param({"patient_id": ["1"]}, "Unknown parameter", id="a column name"),
    ],
)
def test_parse_refuses_what_it_cannot_filter(params: dict[str, list[str]], message: str) -> None:
    with pytest.raises(audit.InvalidAuditQuery, match=message):
        audit.parse(params)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, paging.Page(1, 50), id="defaults"),
        pytest.param({"_limit": ["100000"]}, paging.Page(1, 500), id="a limit capped at 500"),
        pytest.param({"_page": ["1", "3"]}, paging.Page(3, 50), id="the last value wins"),
    ],
)
def test_page_reads_page_and_limit(params: dict[str, list[str]], expected: paging.Page) -> None:
    assert paging.page(params) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "x", "1e3", "\u0661", "9999999999"])
def test_page_refuses_what_is_no_page(raw: str) -> None:
    with pytest.raises(paging.InvalidPage):
        paging.page({"_page": [raw]})


def test_links_keep_the_query_and_move_the_page() -> None:
    links = paging.links("/audit", {"action": ["update"], "_page": ["2"]}, paging.Page(2, 10), 35)
    assert links == (
        '</audit?action=update&_page=1>; rel="first", </audit?action=update&_page=1>; rel="prev", '
        '</audit?action=update&_page=3>; rel="next", </audit?action=update&_page=4>; rel="last"'
    )
    assert 'rel="next"' not in paging.links("/audit", {}, paging.Page(1, 50), 0)
