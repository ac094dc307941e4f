import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.integration.conftest import client_for
from tests.integration.helpers import (
    SAMPLE,
    UNREACHABLE_URL,
    execute,
    make_patient,
    patient_count,
    query,
)

JSON_HEADERS = {"content-type": "application/json"}


def test_list_returns_every_record_in_file_order(seeded_client: TestClient) -> None:
    response = seeded_client.get("/patients")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == SAMPLE


def test_list_of_an_empty_registry_is_an_empty_array(client: TestClient) -> None:
    assert client.get("/patients").json() == []


def test_get_by_id_returns_the_record(seeded_client: TestClient) -> None:
    wanted = SAMPLE[11]
    response = seeded_client.get(f"/patients/{wanted['id']}")

    assert response.status_code == 200
    assert response.json() == wanted


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/patients/999", id="an id that does not exist"),
        pytest.param("/patients/abc", id="a word"),
        pytest.param("/patients/01", id="a leading zero, as json-server compares text"),
        pytest.param("/patients/1.0", id="a decimal"),
        pytest.param("/patients/99999999999999999999999", id="past bigint"),
        pytest.param("/nowhere", id="an unknown route"),
    ],
)
def test_missing_things_are_a_json_404(seeded_client: TestClient, path: str) -> None:
    response = seeded_client.get(path)

    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


def test_post_creates_a_record_with_a_new_id_and_location(seeded_client: TestClient) -> None:
    response = seeded_client.post("/patients", json=make_patient())

    assert response.status_code == 201
    created = response.json()
    assert created == {"id": max(record["id"] for record in SAMPLE) + 1, **make_patient()}
    assert response.headers["location"] == f"http://testserver/patients/{created['id']}"
    assert seeded_client.get(f"/patients/{created['id']}").json() == created


def test_post_keeps_an_explicit_id_and_later_ids_follow_it(client: TestClient) -> None:
    explicit = client.post("/patients", json=make_patient(id=500))
    following = client.post("/patients", json=make_patient(patientID="P901"))

    assert explicit.status_code == 201
    assert explicit.json()["id"] == 500
    assert following.json()["id"] == 501


def test_post_keeps_unknown_fields(client: TestClient) -> None:
    body = make_patient(insurance={"provider": "Aetna", "plan": None}, tags=["a", "b"], flag=True)
    created = client.post("/patients", json=body).json()

    assert client.get(f"/patients/{created['id']}").json() == {"id": created["id"], **body}


def test_ids_are_never_reused_after_the_highest_record_is_removed(
    client: TestClient, migrated_database_url: str
) -> None:
    first = client.post("/patients", json=make_patient()).json()
    query(migrated_database_url, "DELETE FROM patients WHERE id = %s RETURNING id", (first["id"],))
    second = client.post("/patients", json=make_patient()).json()

    assert second["id"] == first["id"] + 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "error_code"),
    [
        pytest.param(b'{"name": "bad",', JSON_HEADERS, 400, "MALFORMED_JSON", id="malformed JSON"),
        pytest.param(b'"hello"', JSON_HEADERS, 400, "INVALID_BODY", id="a JSON string"),
        pytest.param(b"[{}]", JSON_HEADERS, 400, "INVALID_BODY", id="a JSON array"),
        pytest.param(b"", JSON_HEADERS, 400, "MALFORMED_JSON", id="an empty body"),
        pytest.param(b'{"age": NaN}', JSON_HEADERS, 400, "MALFORMED_JSON", id="NaN"),
        pytest.param(b"\xff", JSON_HEADERS, 400, "MALFORMED_JSON", id="bytes that are not UTF-8"),
        pytest.param(b"[" * 100_000, JSON_HEADERS, 400, "MALFORMED_JSON", id="nesting to 100000"),
        pytest.param(
            b'{"patientID": "P1", "name": "A\\u0000B"}',
            JSON_HEADERS,
            400,
            "VALIDATION_ERROR",
            id="an escaped NUL",
        ),
        pytest.param(
            b'{"patientID": "P1", "name": "A", "x": "\\ud800"}',
            JSON_HEADERS,
            400,
            "VALIDATION_ERROR",
            id="an escaped lone surrogate",
        ),
        pytest.param(
            json.dumps(make_patient()).encode(),
            {"content-type": "text/plain"},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            id="JSON sent as text/plain",
        ),
        pytest.param(
            b"patientID=P1&name=Form",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            id="a form body",
        ),
        pytest.param(
            json.dumps(make_patient(age="old")).encode(),
            JSON_HEADERS,
            400,
            "VALIDATION_ERROR",
            id="an invalid field",
        ),
        pytest.param(
            json.dumps(make_patient(notes="x" * 2_000_000)).encode(),
            JSON_HEADERS,
            413,
            "PAYLOAD_TOO_LARGE",
            id="a body over the limit",
        ),
    ],
)
def test_bad_posts_get_a_json_error_and_change_nothing(
    seeded_client: TestClient,
    body: bytes,
    headers: dict[str, str],
    status: int,
    error_code: str,
) -> None:
    response = seeded_client.post("/patients", content=body, headers=headers)

    assert response.status_code == status
    assert response.json()["error_code"] == error_code
    assert "Traceback" not in response.text
    assert patient_count(seeded_client) == len(SAMPLE)


def test_validation_errors_name_every_bad_field(client: TestClient) -> None:
    response = client.post("/patients", json={"age": -1, "lastVisit": "yesterday"})

    assert response.status_code == 400
    assert set(response.json()["field_errors"]) == {"patientID", "name", "age", "lastVisit"}


@pytest.mark.parametrize(
    ("overrides", "error_code", "field"),
    [
        pytest.param({"patientID": "P001"}, "DUPLICATE_PATIENT_ID", "patientID", id="patientID"),
        pytest.param({"id": 1, "patientID": "NEW"}, "DUPLICATE_ID", "id", id="id"),
    ],
)
def test_duplicates_are_a_409_and_change_nothing(
    seeded_client: TestClient, overrides: dict[str, Any], error_code: str, field: str
) -> None:
    response = seeded_client.post("/patients", json=make_patient(**overrides))

    assert response.status_code == 409
    assert response.json()["error_code"] == error_code
    assert field in response.json()["field_errors"]
    assert patient_count(seeded_client) == len(SAMPLE)


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.delete("/patients")

    assert response.status_code == 405
    assert response.json()["error_code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("DELETE", "/patients", "GET, HEAD, POST", id="the collection"),
        pytest.param("POST", "/patients/1", "GET, HEAD, PUT, PATCH, DELETE", id="an item"),
        pytest.param("PUT", "/PATIENTS/", "GET, HEAD, POST", id="another spelling"),
        pytest.param("POST", "/health", "GET, HEAD", id="the health check"),
        pytest.param("DELETE", "/users/1", "PATCH", id="a user"),
    ],
)
def test_allow_lists_every_method_of_the_path(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize("condition", ["W/{tag}", "*", '"other", {tag}', 'W/"x", W/{tag}'])
def test_if_none_match_compares_weakly_and_star_matches(
    seeded_client: TestClient, condition: str
) -> None:
    tag = seeded_client.get("/patients/1").headers["etag"]
    response = seeded_client.get(
        "/patients/1", headers={"if-none-match": condition.format(tag=tag)}
    )
    assert response.status_code == 304
    assert response.headers["etag"] == tag
    other = seeded_client.get("/patients/1", headers={"if-none-match": 'W/"x"'})
    assert other.status_code == 200


def test_error_bodies_carry_a_message_to_show(client: TestClient) -> None:
    body = client.post("/patients", json={"patientID": "", "age": "old"}).json()
    assert body["detail"] == "The patient record is invalid"
    assert body["message"].startswith("The patient record is invalid: ")
    for field, problem in body["field_errors"].items():
        assert f"{field} {problem}" in body["message"]
    assert client.get("/patients/999").json()["message"] == "No patient with this id"


@pytest.mark.parametrize(
    ("path", "origin"),
    [
        pytest.param("/patients/1", None, id="an item without an Origin"),
        pytest.param("/patients", "http://localhost:5173", id="a list with an Origin"),
        pytest.param("/patients/999", "https://elsewhere.example", id="an error, other origin"),
        pytest.param("/health", None, id="the health check"),
    ],
)
def test_every_answer_varies_on_origin(
    seeded_client: TestClient, path: str, origin: str | None
) -> None:
    headers = {"origin": origin} if origin else {}
    vary = seeded_client.get(path, headers=headers).headers["vary"]
    assert {item.strip() for item in vary.split(",")} >= {"Accept-Encoding", "Origin"}


def test_an_opaque_origin_is_never_reflected(client: TestClient) -> None:
    """`Origin: null` (sandboxed frames, file: pages) with credentials would read as the user."""
    answer = client.get("/patients", headers={"origin": "null"})
    preflight = client.options(
        "/patients", headers={"origin": "null", "access-control-request-method": "POST"}
    )
    for response in (answer, preflight):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers


def test_successful_health_checks_leave_no_access_line(
    migrated_database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with client_for(migrated_database_url) as api:
        for _ in range(3):
            api.get("/health")
        api.get("/patients")
    lines = [line for line in capfd.readouterr().err.splitlines() if '"api.access"' in line]
    assert [json.loads(line)["path"] for line in lines] == ["/patients"]


def test_health_is_200_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("healthy", "connected")
    assert body["timestamp"].endswith("+00:00")


def test_health_is_503_and_data_requests_fail_fast_without_a_database() -> None:
    with client_for(UNREACHABLE_URL, health_timeout_seconds=1, db_timeout_seconds=1) as client:
        health = client.get("/health")
        listing = client.get("/patients")

    assert health.status_code == 503
    assert (health.json()["status"], health.json()["database"]) == ("unhealthy", "disconnected")
    assert listing.status_code == 503
    assert listing.json()["error_code"] == "DATABASE_UNAVAILABLE"
    assert listing.headers["retry-after"] == "5"


def test_cors_reflects_any_origin_in_development(client: TestClient) -> None:
    response = client.get("/patients", headers={"origin": "http://localhost:5173"})

    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Location" in response.headers["access-control-expose-headers"]


def test_cors_allows_only_configured_origins(migrated_database_url: str) -> None:
    allowed = ("https://clinic.example.org",)
    with client_for(migrated_database_url, cors_origins=allowed) as client:
        good = client.get("/patients", headers={"origin": allowed[0]})
        bad = client.get("/patients", headers={"origin": "https://evil.example"})
        preflight = client.options(
            "/patients",
            headers={
                "origin": allowed[0],
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )

    assert good.headers["access-control-allow-origin"] == allowed[0]
    assert "access-control-allow-origin" not in bad.headers
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == allowed[0]
    assert preflight.headers["access-control-allow-methods"] == "GET,HEAD,PUT,PATCH,POST,DELETE"
    assert preflight.headers["access-control-allow-headers"] == "content-type"


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    given = client.get("/patients", headers={"x-request-id": "abc-123"})
    generated = client.get("/nowhere")

    assert given.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32


def test_post_without_id_skips_ids_taken_behind_the_sequence(
    client: TestClient, migrated_database_url: str
) -> None:
    # Rows written around the sequence (a restore, a concurrent explicit id): its next values
    # are taken. A client that sent no id must still get a new record, not a 409.
    execute(
        migrated_database_url,
        "INSERT INTO patients (id, patient_id, name) SELECT n, 'T' || n, 'Taken' FROM"
        " generate_series(1, 3) AS n",
    )

    response = client.post("/patients", json=make_patient())

    assert response.status_code == 201
    assert response.json()["id"] == 4
    assert patient_count(client) == 4
