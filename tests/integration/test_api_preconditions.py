from starlette.testclient import TestClient

from tests.integration.helpers import SAMPLE, make_patient

FIRST = SAMPLE[0]
PATH = f"/patients/{FIRST['id']}"


def test_item_responses_carry_an_etag_that_changes_with_the_record(
    seeded_client: TestClient,
) -> None:
    before = seeded_client.get(PATH).headers["etag"]
    patched = seeded_client.patch(PATH, json={"age": 50})
    after = seeded_client.get(PATH).headers["etag"]

    assert before.startswith('"')
    assert patched.headers["etag"] == after != before


def test_if_none_match_gives_a_304(seeded_client: TestClient) -> None:
    tag = seeded_client.get(PATH).headers["etag"]
    response = seeded_client.get(PATH, headers={"if-none-match": tag})

    assert response.status_code == 304
    assert response.content == b""


def test_writes_with_a_current_if_match_succeed(seeded_client: TestClient) -> None:
    tag = seeded_client.get(PATH).headers["etag"]

    patched = seeded_client.patch(PATH, json={"age": 50}, headers={"if-match": tag})
    put = seeded_client.put(
        PATH, json=make_patient(patientID="P001"), headers={"if-match": patched.headers["etag"]}
    )
    deleted = seeded_client.delete(PATH, headers={"if-match": put.headers["etag"]})

    assert [patched.status_code, put.status_code, deleted.status_code] == [200, 200, 200]


def test_writes_with_a_stale_if_match_get_a_412_and_change_nothing(
    seeded_client: TestClient,
) -> None:
    stale = seeded_client.get(PATH).headers["etag"]
    seeded_client.patch(PATH, json={"age": 50})
    current = seeded_client.get(PATH).json()

    responses = [
        seeded_client.patch(PATH, json={"age": 60}, headers={"if-match": stale}),
        seeded_client.put(PATH, json=make_patient(patientID="P001"), headers={"if-match": stale}),
        seeded_client.delete(PATH, headers={"if-match": stale}),
    ]

    assert [response.status_code for response in responses] == [412, 412, 412]
    assert {response.json()["error_code"] for response in responses} == {"PRECONDITION_FAILED"}
    assert seeded_client.get(PATH).json() == current


def test_if_match_star_matches_any_existing_record(seeded_client: TestClient) -> None:
    assert seeded_client.patch(PATH, json={"age": 1}, headers={"if-match": "*"}).status_code == 200
    missing = seeded_client.patch("/patients/424242", json={"age": 1}, headers={"if-match": "*"})
    assert missing.status_code == 404
