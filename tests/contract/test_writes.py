"""Write sequences compared with json-server, each on fresh copies of the fixture.

Bodies are valid for both (patientID and name present, patientID unique): invalid bodies are a
deliberate difference (differences.INVALID_WRITES). Every response is compared, and so is the
whole list after each sequence.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract import compare
from tests.contract.compare import Call, Pair

FIXTURE_MAX_ID = 50


def make_patient(**overrides: Any) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "patientID": "N100",
        "name": "Nadia Neu",
        "age": 40,
        "gender": "Female",
        "medicalCondition": "Asthma",
        "lastVisit": "2024-12-24",
    }
    patient.update(overrides)
    return patient


def post(body: Any, target: str = "/patients") -> Call:
    return compare.send_json("POST", target, body)


def put(target: str, body: Any) -> Call:
    return compare.send_json("PUT", target, body)


def patch(target: str, body: Any) -> Call:
    return compare.send_json("PATCH", target, body)


def delete(target: str) -> Call:
    return Call("DELETE", target)


def run(pair: Pair, *calls: Call) -> None:
    """Compare each call's answer in turn, then the whole list."""
    for step, call in enumerate(calls, start=1):
        pair.assert_same(call, f"step {step} of {len(calls)}: ")
    pair.assert_same(compare.get("/patients"), "the list after the sequence: ")


def test_post_without_id_gets_the_max_id_plus_one(write_pair: Pair) -> None:
    reference, ours = write_pair.assert_same(post(make_patient()))

    assert reference.body["id"] == ours.body["id"] == FIXTURE_MAX_ID + 1
    run(
        write_pair,
        compare.get(f"/patients/{FIXTURE_MAX_ID + 1}"),
        compare.get("/patients?patientID=N100"),
        compare.get("/patients?_sort=id&_order=desc&_limit=2"),
        compare.get("/patients?_page=5"),
    )


def test_post_keeps_extra_fields_of_every_json_type(write_pair: Pair) -> None:
    extra = {
        "email": "neu@example.com",
        "insurance": {"provider": "Ørsted Care", "plan": "Gold", "memberNumber": "OC-1"},
        "allergies": ["pollen", "dust"],
        "vip": False,
        "visits": 4,
        "score": 7.25,
        "notes": None,
        "nickname": "Nadi 🐙",
        "history": [{"year": 2020, "ok": True}, None, [1, "two"]],
    }
    run(
        write_pair,
        post(make_patient(**extra)),
        compare.get("/patients/51"),
        compare.get("/patients?q=%C3%B8rsted"),
        compare.get("/patients?insurance.provider=%C3%98rsted%20Care"),
        compare.get("/patients?allergies.1=dust"),
        compare.get("/patients?history.0.year=2020"),
        compare.get("/patients?vip=false"),
        compare.get("/patients?score_gte=7"),
        compare.get("/patients?_sort=score&_order=desc&_limit=3"),
    )


def test_post_keeps_keys_with_spaces_and_unicode(write_pair: Pair) -> None:
    extra = {"two words": 2, "ключ": "значение", "empty": {}, "list": []}
    run(
        write_pair,
        post(make_patient(**extra)),
        compare.get("/patients/51"),
        compare.get("/patients?two%20words=2"),
        compare.get(
            "/patients?%D0%BA%D0%BB%D1%8E%D1%87=%D0%B7%D0%BD%D0%B0%D1%87%D0%B5%D0%BD%D0%B8%D0%B5"
        ),
        compare.get("/patients?q=%D0%B7%D0%BD%D0%B0%D1%87"),
        compare.get("/patients?empty=%5Bobject%20Object%5D"),
        compare.get("/patients?list="),
    )


LITERAL_PATTERNS = (
    "k", "K", "kel", "s", "ss", "i", "I", "stra", "%25", "_", "a_b", "100%25", "o'b", "%20",
    "e", "%C3%A9", "4", "2024-0", "nest",
)  # fmt: skip


def test_a_literal_like_folds_case_as_javascript_does(write_pair: Pair) -> None:
    """A literal `_like` is a substring test, not a regular expression (sqlquery._like): its
    case folding must still be JavaScript's, which folds no character outside ASCII into it."""
    names = [
        "\u212aelvin Sign", "Long \u017fs", "D\u0131otless", "\u0130stanbul", "Stra\u00dfe",
        "Kelly 100%", "a_b c", "O'Brien", "Andr\u00e9", "axb", "Nested",
    ]  # fmt: skip
    posts = [post(make_patient(patientID=f"L{n}", name=name)) for n, name in enumerate(names)]
    tagged = post(make_patient(patientID="LT", name="Tagged", tags={"note": "a"}))
    reads = [
        compare.get(f"/patients?{field}_like={pattern}")
        for pattern in LITERAL_PATTERNS
        for field in ("name", "lastVisit", "age", "tags")
    ]
    run(write_pair, *posts, tagged, *reads)


def test_a_key_with_a_dot_is_found_before_the_path(write_pair: Pair) -> None:
    # lodash's _.get and _.has try "a.b" as one key before they read it as the path a -> b.
    run(
        write_pair,
        post(make_patient(**{"a.b": "dotted", "a": {"b": "nested"}})),
        compare.get("/patients?a.b=dotted"),
        compare.get("/patients?a.b=nested"),
        compare.get("/patients?_sort=a.b&_order=desc&_limit=2"),
    )


def test_post_with_an_explicit_id_moves_the_next_id_past_it(write_pair: Pair) -> None:
    run(
        write_pair,
        post(make_patient(id=60)),
        post(make_patient(patientID="N101")),
        compare.get("/patients/61"),
        compare.get("/patients?_sort=id&_order=desc&_limit=3"),
    )


def test_post_with_an_explicit_id_in_the_gap_keeps_it(write_pair: Pair) -> None:
    run(
        write_pair,
        post(make_patient(id=45)),
        post(make_patient(patientID="N101")),
        compare.get("/patients/45"),
        compare.get("/patients/51"),
    )


@pytest.mark.parametrize(
    "falsy", [pytest.param(value, id=repr(value)) for value in (0, None, False, "")]
)
def test_post_with_a_falsy_id_gets_an_assigned_id(write_pair: Pair, falsy: Any) -> None:
    run(write_pair, post({"id": falsy, **make_patient()}), compare.get("/patients/51"))


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/patients/", id="trailing slash"),
        pytest.param("/patients?x=1", id="query string"),
        pytest.param("/PATIENTS", id="upper-case route"),
    ],
)
def test_post_to_other_spellings_of_the_collection(write_pair: Pair, target: str) -> None:
    # The Location is not compared for these (differences.LOCATION_VERBATIM).
    run(write_pair, post(make_patient(), target), compare.get("/patients/51"))


def test_post_with_a_charset_in_the_content_type(write_pair: Pair) -> None:
    call = Call(
        "POST",
        "/patients",
        (("Origin", compare.ORIGIN), ("Content-Type", "application/json; charset=utf-8")),
        b'{"patientID": "N100", "name": "Charset Ok"}',
    )
    run(write_pair, call)


def test_posts_without_an_origin(write_pair: Pair) -> None:
    call = compare.send_json("POST", "/patients", make_patient(), origin=False)
    run(write_pair, call, compare.get("/patients/51", origin=False))


def test_put_replaces_the_whole_record(write_pair: Pair) -> None:
    replacement = make_patient(patientID="P003", name="José Replaced", vip=True)
    run(
        write_pair,
        put("/patients/3", replacement),
        compare.get("/patients/3"),
        compare.get("/patients?insurance.provider=Aetna"),
        compare.get("/patients?_sort=name&_limit=5"),
    )


def test_put_with_only_the_required_fields_drops_the_others(write_pair: Pair) -> None:
    run(
        write_pair,
        put("/patients/20", {"patientID": "P020", "name": "Only Name"}),
        compare.get("/patients/20"),
        compare.get("/patients?balance=-12.5"),
    )


def test_put_with_the_same_id_in_the_body(write_pair: Pair) -> None:
    run(write_pair, put("/patients/4", {"id": 4, **make_patient(patientID="P004")}))


def test_put_with_another_id_in_the_body_keeps_the_url_id(write_pair: Pair) -> None:
    run(
        write_pair,
        put("/patients/5", {"id": 999, **make_patient(patientID="P005")}),
        compare.get("/patients/5"),
        compare.get("/patients/999"),
    )


def test_put_with_a_new_patient_id(write_pair: Pair) -> None:
    run(
        write_pair,
        put("/patients/13", make_patient(patientID="N200")),
        compare.get("/patients?patientID=P013"),
        compare.get("/patients?patientID=N200"),
    )


def test_patch_merges_shallowly(write_pair: Pair) -> None:
    run(
        write_pair,
        patch("/patients/1", {"age": 46, "lastVisit": "2024-06-01", "newField": "x"}),
        patch("/patients/3", {"insurance": {"plan": "HMO"}}),
        compare.get("/patients/1"),
        compare.get("/patients/3"),
        compare.get("/patients?newField=x"),
        compare.get("/patients?insurance.provider=Aetna"),
        compare.get("/patients?insurance.plan=HMO"),
    )


def test_patch_keeps_an_explicit_null(write_pair: Pair) -> None:
    run(
        write_pair,
        patch("/patients/3", {"email": None}),
        patch("/patients/12", {"age": None, "gender": None}),
        compare.get("/patients/3"),
        compare.get("/patients/12"),
        compare.get("/patients?email_ne=x"),
        compare.get("/patients?_sort=age&_order=desc&_limit=5"),
    )


def test_patch_ignores_the_id_in_the_body(write_pair: Pair) -> None:
    run(
        write_pair,
        patch("/patients/7", {"id": 777, "name": "renamed"}),
        compare.get("/patients/7"),
        compare.get("/patients/777"),
    )


def test_patch_with_an_empty_object_changes_nothing(write_pair: Pair) -> None:
    run(write_pair, patch("/patients/9", {}), compare.get("/patients/9"))


def test_patch_adds_a_field_that_filters_then_see(write_pair: Pair) -> None:
    run(
        write_pair,
        compare.get("/patients?ward=B"),
        patch("/patients/36", {"ward": "B", "tags": ["new"]}),
        compare.get("/patients?ward=B"),
        compare.get("/patients?ward=A"),
        compare.get("/patients?tags.0=new"),
        compare.get("/patients?_sort=ward&_order=desc&_limit=3"),
    )


def test_delete_then_read(write_pair: Pair) -> None:
    run(
        write_pair,
        delete("/patients/5"),
        compare.get("/patients/5"),
        delete("/patients/5"),
        compare.get("/patients?name=anna%20berg"),
        compare.get("/patients?_page=4"),
    )


def test_post_after_deleting_a_record_that_is_not_the_highest(write_pair: Pair) -> None:
    # Deleting the highest id and then posting is a deliberate difference (IDS_NEVER_REUSED).
    run(write_pair, delete("/patients/13"), post(make_patient()), compare.get("/patients/51"))


def test_deleting_the_last_record_with_a_field_makes_its_filter_unknown(write_pair: Pair) -> None:
    run(
        write_pair,
        delete("/patients/25"),
        compare.get("/patients?emergencyContact.name=Lucy%20Brown"),
        compare.get("/patients?emergencyContact.name_ne=x"),
    )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(put("/patients/40", make_patient()), id="PUT in the gap"),
        pytest.param(put("/patients/9999", make_patient()), id="PUT missing"),
        pytest.param(patch("/patients/9999", {"age": 3}), id="PATCH missing"),
        pytest.param(delete("/patients/9999"), id="DELETE missing"),
        pytest.param(delete("/patients/01"), id="DELETE with a leading zero"),
        pytest.param(patch("/patients/abc", {"age": 3}), id="PATCH a non-numeric id"),
    ],
)
def test_writes_to_missing_targets(write_pair: Pair, call: Call) -> None:
    run(write_pair, call)


def test_a_long_sequence_of_mixed_writes(write_pair: Pair) -> None:
    run(
        write_pair,
        post(make_patient()),
        post(make_patient(patientID="N101", name="Ödön Új", age=None, gender="")),
        patch("/patients/51", {"medicalCondition": "Migraine", "visits": 2}),
        put("/patients/2", make_patient(patientID="P002", name="Jane Smith-Jones", age=33)),
        delete("/patients/1"),
        post(make_patient(patientID="N102", name="Third", id=70)),
        patch("/patients/70", {"allergies": ["latex"]}),
        delete("/patients/52"),
        post(make_patient(patientID="N103", name="Fourth")),
        compare.get("/patients?_sort=id&_order=desc&_page=1&_limit=5"),
        compare.get("/patients?q=migraine&_sort=name"),
        compare.get("/patients?allergies_like=latex"),
        compare.get("/patients/71"),
    )
