import dataclasses
import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import patients

TODAY = datetime.date(2024, 6, 1)
NESTED: Any = "leaf"
for _ in range(40):
    NESTED = [NESTED]


def make_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": 1,
        "patientID": "P001",
        "name": "John Doe",
        "age": 45,
        "gender": "Male",
        "medicalCondition": "Hypertension",
        "lastVisit": "2024-01-15",
    }
    record.update(overrides)
    return record


def test_to_row_splits_known_fields_into_typed_columns() -> None:
    row = patients.to_row(make_record())
    assert row == patients.PatientRow(
        id=1,
        patient_id="P001",
        name="John Doe",
        age=45,
        gender="Male",
        medical_condition="Hypertension",
        last_visit=datetime.date(2024, 1, 15),
        extra={},
    )


def test_an_explicit_null_is_kept_in_extra_so_it_reads_back_as_null() -> None:
    row = patients.to_row(make_record(age=None, lastVisit=None))
    assert (row.age, row.last_visit) == (None, None)
    assert row.extra == {"age": None, "lastVisit": None}


def test_unknown_fields_go_to_extra_verbatim() -> None:
    insurance = {"provider": "Aetna", "plan": {"tier": [1, 2]}}
    row = patients.to_row(make_record(insurance=insurance, flag=False))
    assert row.extra == {"insurance": insurance, "flag": False}


def test_replacement_ignores_the_body_id() -> None:
    assert patients.replacement(make_record(id="not even valid")).id is None


def test_merge_is_shallow_and_keeps_the_id_out() -> None:
    current = make_record(insurance={"provider": "Aetna", "plan": "PPO"})
    row = patients.merge(current, {"id": 999, "insurance": {"plan": "HMO"}, "age": 46})
    assert row.id is None
    assert row.age == 46
    assert row.extra == {"insurance": {"plan": "HMO"}}
    assert row.name == "John Doe"


@pytest.mark.parametrize("falsy_id", [None, 0, False, ""])
def test_a_falsy_id_means_assign_one_as_json_server_does(falsy_id: object) -> None:
    assert patients.to_row(make_record(id=falsy_id)).id is None


def test_a_missing_id_means_assign_one() -> None:
    record = make_record()
    del record["id"]
    assert patients.to_row(record).id is None


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        pytest.param({"id": "abc"}, "id", "positive whole number", id="a string id"),
        pytest.param({"id": -3}, "id", "positive whole number", id="a negative id"),
        pytest.param({"id": 1.5}, "id", "positive whole number", id="a fractional id"),
        pytest.param({"id": 2**63}, "id", "positive whole number", id="an id past bigint"),
        pytest.param({"id": 2**53}, "id", "4,503,599,627,370,496", id="an id a browser rounds"),
        pytest.param({"id": 2**52 + 1}, "id", "up to", id="an id that leaves too few"),
        pytest.param({"patientID": "  "}, "patientID", "only whitespace", id="a blank patientID"),
        pytest.param({"patientID": ""}, "patientID", "must not be empty", id="an empty patientID"),
        pytest.param({"patientID": " P1"}, "patientID", "whitespace", id="a padded patientID"),
        pytest.param({"patientID": "P\t1"}, "patientID", "control", id="a tab in patientID"),
        pytest.param({"patientID": "P" * 65}, "patientID", "at most 64", id="a long patientID"),
        pytest.param({"name": "A\x00B"}, "name", "NUL", id="a NUL in a name"),
        pytest.param({"name": "\ud800"}, "name", "surrogates", id="a lone surrogate"),
        pytest.param({"gender": "male"}, "gender", "one of", id="a gender outside the set"),
        pytest.param({"gender": "   "}, "gender", "only whitespace", id="a blank gender"),
        pytest.param(
            {"medicalCondition": "x\x1b"}, "medicalCondition", "control", id="an escape character"
        ),
        pytest.param({"lastVisit": "1899-12-31"}, "lastVisit", "between", id="before 1900"),
        pytest.param(
            {"lastVisit": "2024-06-03"},
            "lastVisit",
            "and 2024-06-02 (tomorrow, UTC)",
            id="in the future names the last day allowed",
        ),
        pytest.param({"notes": "a\x00"}, "notes", "NUL", id="a NUL in an extra field"),
        pytest.param({"score": float("inf")}, "score", "finite", id="an infinite number"),
        pytest.param({"deep": NESTED}, "deep", "nest deeper", id="nesting past 32 levels"),
        pytest.param({"x": {"k\x00": 1}}, "x", "NUL", id="a NUL in a nested key"),
        pytest.param({"patientID": 7}, "patientID", "must be a string", id="a numeric patientID"),
        pytest.param({"name": None}, "name", "must be a string", id="a null name"),
        pytest.param({"name": "x" * 201}, "name", "at most 200", id="a name too long"),
        pytest.param({"age": "45"}, "age", "whole number", id="age as a string"),
        pytest.param({"age": True}, "age", "whole number", id="age as a boolean"),
        pytest.param({"age": 151}, "age", "whole number", id="age past the range"),
        pytest.param({"age": 45.5}, "age", "whole number", id="a fractional age"),
        pytest.param(
            {"lastVisit": "2024-02-30"},
            "lastVisit",
            "2024-02-30 is not a date of the calendar",
            id="no such day",
        ),
        pytest.param({"age": "45"}, "age", 'write 45, not "45"', id="an age as text"),
        pytest.param({"age": 151}, "age", "from 0 to 150", id="an age too high"),
        pytest.param({"lastVisit": "15/01/2024"}, "lastVisit", "YYYY-MM-DD", id="another format"),
        pytest.param({"lastVisit": "2024-1-5"}, "lastVisit", "YYYY-MM-DD", id="unpadded"),
        pytest.param({"gender": 1}, "gender", "must be a string", id="a numeric gender"),
    ],
)
def test_to_row_names_the_bad_field(overrides: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(patients.InvalidPatient) as raised:
        patients.to_row(make_record(**overrides), today=TODAY)
    assert list(raised.value.field_errors) == [field]
    assert message in raised.value.field_errors[field]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="every typed field"),
        pytest.param({"id": 0, "age": None, "gender": None}, id="an assigned id and nulls"),
        pytest.param({"insurance": {"plan": "PPO"}, "lastVisit": "2024-06-02"}, id="extra"),
    ],
)
def test_to_fields_are_the_fields_of_to_row_in_order(overrides: dict[str, Any]) -> None:
    record = make_record(**overrides)
    fields = patients.to_fields(record, today=TODAY)
    assert fields == dataclasses.astuple(patients.to_row(record, today=TODAY))


def test_to_row_reports_every_error_at_once() -> None:
    with pytest.raises(patients.InvalidPatient) as raised:
        patients.to_row({"age": "old", "lastVisit": "soon"})
    assert set(raised.value.field_errors) == {"patientID", "name", "age", "lastVisit"}


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"gender": ""}, id="gender not recorded"),
        pytest.param({"gender": "Non-binary"}, id="a gender from the set"),
        pytest.param({"lastVisit": "2024-06-02"}, id="tomorrow, for time zones ahead"),
        pytest.param({"name": "Zoë Ørsted 王芳"}, id="unicode"),
        pytest.param({"notes": "line one\nline two\ttab"}, id="free text in an extra field"),
        pytest.param({"medicalCondition": ""}, id="an empty optional field"),
    ],
)
def test_to_row_accepts(overrides: dict[str, Any]) -> None:
    record = make_record(**overrides)
    row = patients.to_row(record, today=TODAY)

    columns = {wire: getattr(row, column) for wire, column in patients.COLUMNS.items()}
    if row.last_visit is not None:
        columns["lastVisit"] = row.last_visit.isoformat()
    stored = {"id": row.id, **columns, **row.extra}
    assert {key: stored.get(key) for key in record} == record  # every field kept, unchanged
    assert set(row.extra) == set(record) - set(patients.COLUMNS) - {"id"}


UNSTORABLE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(st.sampled_from(["a", "\x00", "\ud800", " ", "é"]), max_size=3),
)


@given(key=st.text(st.sampled_from(["k", "\x00", "\udfff"]), max_size=2), value=UNSTORABLE_SCALARS)
def test_the_scalar_shortcut_of_storable_answers_as_the_walk_does(key: str, value: Any) -> None:
    assert patients._storable(key, value) == patients._storable_tree(key, value)


def test_no_printable_character_is_unstorable_or_a_control() -> None:
    # to_row skips the pattern searches for a printable string
    printable = "".join(filter(str.isprintable, map(chr, range(0x110000))))
    assert patients.UNSTORABLE.search(printable) is None
    assert patients.CONTROL.search(printable) is None
