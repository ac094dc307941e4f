import io
import json
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seed import reader

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner),
    max_leaves=12,
)


def read_all(text: str, chunk_bytes: int) -> tuple[list[reader.Entry], dict[str, Any]]:
    others: dict[str, Any] = {}
    found = list(reader.read(io.BytesIO(text.encode()), others.__setitem__, chunk_bytes))
    return found, others


@settings(max_examples=200, deadline=None)
@given(
    patients=st.lists(VALUES, max_size=6),
    others=st.dictionaries(TEXT.filter(lambda key: key != "patients"), VALUES, max_size=3),
    indent=st.sampled_from([None, 0, 2]),
    chunk_bytes=st.integers(min_value=1, max_value=40),
)
def test_read_matches_json_loads_whatever_the_chunk_boundaries(
    patients: list[Any], others: dict[str, Any], indent: int | None, chunk_bytes: int
) -> None:
    text = json.dumps({**others, "patients": patients}, indent=indent, ensure_ascii=False)

    found, other = read_all(text, chunk_bytes)

    assert [entry.value for entry in found] == patients
    assert [entry.position for entry in found] == list(range(len(patients)))
    assert [json.loads(entry.raw) for entry in found] == patients
    assert other == others


def test_raw_is_the_records_text_exactly_as_written() -> None:
    text = '{"patients": [ {"id":1,  "name" : "Zoë"} ,\n  [1, 2.50] ]}'

    found, _ = read_all(text, 3)

    assert [entry.raw for entry in found] == ['{"id":1,  "name" : "Zoë"}', "[1, 2.50]"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"patients": [', "Expecting value", id="truncated"),
        pytest.param('{"patients": [1 2]}', "expected ','", id="a missing comma"),
        pytest.param('{"patients": [1,]}', "Expecting value", id="a trailing comma"),
        pytest.param('{"patients": [NaN]}', "NaN is not a JSON value", id="NaN"),
        pytest.param('{"patients": [-Infinity]}', "Infinity is not", id="infinity"),
        pytest.param('{"patients": []} []', "extra data", id="data after the object"),
        pytest.param('{"patients": [tru]}', "Expecting value", id="a cut literal"),
        pytest.param("{1: 2}", "expected a key", id="a key that is not a string"),
        pytest.param('{"patients": [{"a": "\x01"}]}', "control character", id="a raw control"),
    ],
)
@pytest.mark.parametrize("chunk_bytes", [1, 4, reader.CHUNK_BYTES])
def test_read_refuses_what_is_not_json(text: str, message: str, chunk_bytes: int) -> None:
    with pytest.raises(ValueError, match=message):
        read_all(text, chunk_bytes)


def test_positions_go_on_when_patients_comes_twice() -> None:
    found, _ = read_all('{"patients": [1, 2], "patients": [3]}', 2)

    assert [(entry.position, entry.value) for entry in found] == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("chunk_bytes", [7, 1000, reader.CHUNK_BYTES])
def test_a_number_past_pythons_integer_limit_refuses_only_its_record(chunk_bytes: int) -> None:
    huge = "9" * (sys.get_int_max_str_digits() + 1)
    record = '{"id": 2, "weight": -' + huge + "}"
    text = '{"patients": [{"id": 1}, ' + record + ', {"id": 3}, ' + huge + "]}"

    found, _ = read_all(text, chunk_bytes)

    assert [entry.value for entry in found[::2]] == [{"id": 1}, {"id": 3}]
    for entry in found[1::2]:
        assert isinstance(entry.value, reader.Unreadable)
        assert f"more than {sys.get_int_max_str_digits()} digits" in entry.value.reason
    assert [entry.raw for entry in found[1::2]] == [record, huge]


def test_a_number_past_the_limit_in_another_collection_stops_the_import() -> None:
    text = '{"totals": [' + "1" * (sys.get_int_max_str_digits() + 1) + '], "patients": []}'

    with pytest.raises(reader.DbJsonError, match='"totals" collection cannot be kept'):
        read_all(text, 64)
