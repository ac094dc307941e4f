from typing import Any

from starlette.testclient import TestClient

from api import patients
from tests.integration.helpers import SAMPLE, make_patient, patient_count

FIRST = SAMPLE[0]


def test_put_replaces_every_field_and_keeps_id_and_position(seeded_client: TestClient) -> None:
    replacement = make_patient(patientID="P001", name="Replaced", id=999)
    response = seeded_client.put(f"/patients/{FIRST['id']}", json=replacement)

    expected = {**make_patient(patientID="P001", name="Replaced"), "id": FIRST["id"]}
    assert response.status_code == 200
    assert response.json() == expected
    assert seeded_client.get("/patients").json()[0] == expected
    assert seeded_client.get("/patients/999").status_code == 404


def test_put_drops_fields_the_body_leaves_out(seeded_client: TestClient) -> None:
    with_extra = next(record for record in SAMPLE if "insurance" in record)
    body = {"patientID": with_extra["patientID"], "name": "Only Name"}
    response = seeded_client.put(f"/patients/{with_extra['id']}", json=body)

    assert response.json() == {"id": with_extra["id"], **body}


def test_patch_merges_shallowly_and_keeps_the_id(seeded_client: TestClient) -> None:
    with_extra = next(record for record in SAMPLE if "insurance" in record)
    changes = {"id": 777, "age": 46, "insurance": {"plan": "HMO"}, "newField": "x", "email": None}
    response = seeded_client.patch(f"/patients/{with_extra['id']}", json=changes)

    expected: dict[str, Any] = {**with_extra, **changes, "id": with_extra["id"]}
    assert response.status_code == 200
    assert response.json() == expected
    assert seeded_client.get(f"/patients/{with_extra['id']}").json() == expected
    assert seeded_client.get("/patients/777").status_code == 404


def test_patch_with_an_empty_object_changes_nothing(seeded_client: TestClient) -> None:
    assert seeded_client.patch(f"/patients/{FIRST['id']}", json={}).json() == FIRST


def test_an_invalid_patch_is_refused_and_changes_nothing(seeded_client: TestClient) -> None:
    response = seeded_client.patch(f"/patients/{FIRST['id']}", json={"age": "old", "name": ""})

    assert response.status_code == 400
    assert set(response.json()["field_errors"]) == {"age", "name"}
    assert seeded_client.get(f"/patients/{FIRST['id']}").json() == FIRST


def test_put_or_patch_onto_another_patients_id_is_a_409(seeded_client: TestClient) -> None:
    taken = SAMPLE[1]["patientID"]
    put = seeded_client.put(f"/patients/{FIRST['id']}", json=make_patient(patientID=taken))
    patch = seeded_client.patch(f"/patients/{FIRST['id']}", json={"patientID": taken})

    assert (put.status_code, patch.status_code) == (409, 409)
    assert patch.json()["error_code"] == "DUPLICATE_PATIENT_ID"
    assert seeded_client.get(f"/patients/{FIRST['id']}").json() == FIRST


def test_delete_answers_an_empty_object_then_404(seeded_client: TestClient) -> None:
    first = seeded_client.delete(f"/patients/{FIRST['id']}")
    again = seeded_client.delete(f"/patients/{FIRST['id']}")

    assert (first.status_code, first.json()) == (200, {})
    assert again.status_code == 404
    assert seeded_client.get(f"/patients/{FIRST['id']}").status_code == 404
    assert patient_count(seeded_client) == len(SAMPLE) - 1


def test_writes_to_a_missing_id_are_404_and_create_nothing(seeded_client: TestClient) -> None:
    responses = [
        seeded_client.put("/patients/424242", json=make_patient()),
        seeded_client.patch("/patients/424242", json={"age": 1}),
        seeded_client.delete("/patients/424242"),
    ]

    assert [response.status_code for response in responses] == [404, 404, 404]
    assert patient_count(seeded_client) == len(SAMPLE)


def test_routes_are_case_insensitive_and_tolerate_a_trailing_slash(
    seeded_client: TestClient,
) -> None:
    assert seeded_client.get("/patients/").json() == SAMPLE
    assert seeded_client.get("/patients//").json() == SAMPLE
    assert seeded_client.get(f"/PATIENTS/{FIRST['id']}").json() == FIRST
    assert seeded_client.get(f"/patients/{FIRST['id']}/").json() == FIRST
    assert seeded_client.get(f"/patients/{FIRST['id']}//").status_code == 404


def test_head_answers_headers_without_a_body(seeded_client: TestClient) -> None:
    response = seeded_client.head("/patients?_limit=2")

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-total-count"] == str(len(SAMPLE))


def test_every_options_request_is_a_204(client: TestClient) -> None:
    assert client.options("/nowhere").status_code == 204


def test_big_answers_are_gzipped_when_asked(seeded_client: TestClient) -> None:
    response = seeded_client.get("/patients", headers={"accept-encoding": "gzip"})

    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == SAMPLE
    assert response.headers["cache-control"] == "no-store"


def test_reads_of_one_record_keep_gzip_head_urls_and_errors(client: TestClient) -> None:
    """GET and HEAD of one record skip Starlette's router (middleware.ItemReads): compression,
    HEAD, json-server's URL tolerance and the JSON 404 must still be the app's."""
    created = client.post("/patients", json=make_patient(notes="x" * 2000)).json()
    path = f"/patients/{created['id']}"

    zipped = client.get(path, headers={"accept-encoding": "gzip"})
    plain = client.get(path, headers={"accept-encoding": "identity"})
    head = client.head(path, headers={"accept-encoding": "identity"})
    tolerant = client.get(f"/PATIENTS/{created['id']}/", headers={"accept-encoding": "identity"})
    missing = client.get("/patients/999999", headers={"accept-encoding": "identity"})

    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == plain.json() == tolerant.json() == created
    assert "content-encoding" not in plain.headers
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == plain.headers["etag"]
    assert head.headers["content-length"] == plain.headers["content-length"]
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "NOT_FOUND"
    assert missing.headers["x-request-id"]
    assert missing.headers["cache-control"] == "no-store"


def test_no_single_write_can_exhaust_the_ids(client: TestClient) -> None:
    """The issue's trap: an explicit id of 2**63 - 1 used to leave every later POST a 500."""
    refused = client.post("/patients", json=make_patient(id=2**63 - 1, patientID="MAXID"))
    assert refused.status_code == 400
    assert "id" in refused.json()["field_errors"]

    highest = client.post("/patients", json=make_patient(id=patients.MAX_CHOSEN_ID))
    after = client.post("/patients", json=make_patient(patientID="NEXT"))

    assert highest.status_code == after.status_code == 201
    assert after.json()["id"] == patients.MAX_CHOSEN_ID + 1 <= patients.MAX_ID
    assert client.get(f"/patients/{after.json()['id']}").json() == after.json()
