"""AUTH_MODE=entra end to end: a real OpenID provider's tokens, forged ones, users and admins."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

import localoidc
from tests.identity import GRAPH, OTHER_TENANT, TENANT, SigningKey, unsigned, user_claims
from tests.integration.conftest import client_for
from tests.integration.helpers import make_patient, query
from tests.signin import ADMIN_OID, CONFIGURED_ADMIN_OID, READER_OID, bearer, entra_settings_for

ORIGIN = "http://localhost:5173"


@pytest.fixture
def api(migrated_database_url: str, oidc: localoidc.RunningProvider) -> Iterator[TestClient]:
    with client_for(
        migrated_database_url,
        auth_mode="entra",
        entra=entra_settings_for(oidc.authority_host),
        admin_object_ids=frozenset({CONFIGURED_ADMIN_OID}),
        cors_origins=(ORIGIN,),
    ) as test_client:
        yield test_client


def counts(url: str) -> tuple[int, int]:
    row = query(
        url, "SELECT (SELECT count(*) FROM patients) AS p, (SELECT count(*) FROM users) AS u"
    )[0]
    return row["p"], row["u"]


def provider_claims(oidc: localoidc.RunningProvider, **overrides: Any) -> dict[str, Any]:
    """Claims as the test provider issues them (its issuer), for tokens we sign ourselves."""
    return user_claims(iss=oidc.issuer, oid=READER_OID, **overrides)


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["Registry.Admin"]
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def test_a_provider_token_reads_and_writes_and_creates_its_user(
    api: TestClient, oidc: localoidc.RunningProvider, migrated_database_url: str
) -> None:
    headers = bearer(oidc.token("reader"))

    created = api.post("/patients", json=make_patient(), headers=headers)
    listed = api.get("/patients", headers=headers)
    me = api.get("/me", headers=headers)

    assert created.status_code == 201
    assert listed.json() == [created.json()]
    assert me.json() == {
        "id": me.json()["id"],
        "tenantId": TENANT,
        "objectId": READER_OID,
        "email": "rita@clinic.test",
        "displayName": "Rita Reader",
        "isAdmin": False,
        "anonymous": False,
        "permissions": ["patients:read", "patients:write"],
    }
    users = query(migrated_database_url, "SELECT * FROM users")
    assert [(str(u["tenant_id"]), str(u["object_id"]), u["display_name"]) for u in users] == [
        (TENANT, READER_OID, "Rita Reader")
    ]
    assert users[0]["id"] == me.json()["id"]


@pytest.mark.parametrize(
    ("make_headers", "error"),
    [
        pytest.param(lambda o, k: {}, None, id="no header"),
        pytest.param(lambda o, k: {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, None, id="Basic"),
        pytest.param(lambda o, k: bearer("not.a.jwt"), "invalid_token", id="malformed"),
        pytest.param(lambda o, k: {"Authorization": "Bearer"}, "invalid_token", id="empty"),
        pytest.param(
            lambda o, k: bearer(unsigned(provider_claims(o), kid=k.kid)),
            "invalid_token",
            id="alg none",
        ),
        pytest.param(
            lambda o, k: bearer(k.sign(provider_claims(o, lifetime=-300))),
            "invalid_token",
            id="expired",
        ),
        pytest.param(
            lambda o, k: bearer(k.sign(provider_claims(o, nbf=int(time.time()) + 900))),
            "invalid_token",
            id="not yet valid",
        ),
        pytest.param(
            lambda o, k: bearer(k.sign(user_claims(oid=READER_OID))),
            "invalid_token",
            id="the real Entra issuer, not the configured authority",
        ),
        pytest.param(
            lambda o, k: bearer(k.sign(provider_claims(o, aud="api://another-api"))),
            "invalid_token",
            id="wrong audience",
        ),
        pytest.param(
            lambda o, k: bearer(k.sign(provider_claims(o, aud=GRAPH))),
            "invalid_token",
            id="a Graph audience",
        ),
        pytest.param(
            lambda o, k: bearer(k.sign({**provider_claims(o), "tid": OTHER_TENANT})),
            "invalid_token",
            id="wrong tenant",
        ),
        pytest.param(
            lambda o, k: bearer(SigningKey.generate("unknown").sign(provider_claims(o))),
            "invalid_token",
            id="unknown kid",
        ),
        pytest.param(
            lambda o, k: bearer(SigningKey.generate(k.kid).sign(provider_claims(o))),
            "invalid_token",
            id="a forged key with the published kid",
        ),
        pytest.param(
            lambda o, k: bearer(tampered(o.token("reader"))), "invalid_token", id="tampered payload"
        ),
        pytest.param(
            lambda o, k: bearer(o.token("reader")[:-8] + "AAAAAAAA"),
            "invalid_token",
            id="tampered signature",
        ),
        pytest.param(
            lambda o, k: bearer(o.token("reader", resource="https://graph.microsoft.com")),
            "invalid_token",
            id="a real Graph token from the provider",
        ),
        pytest.param(
            lambda o, k: bearer(k.sign(provider_claims(o, padding="x" * 20_000))),
            "invalid_token",
            id="an oversized token",
        ),
        pytest.param(lambda o, k: bearer(o.token("no-scope")), "insufficient_scope", id="no scope"),
        pytest.param(
            lambda o, k: bearer(o.token("app-without-role")),
            "insufficient_scope",
            id="an app without the role",
        ),
    ],
)
def test_a_bad_token_gets_no_data_and_writes_nothing(
    api: TestClient,
    oidc: localoidc.RunningProvider,
    signing_key: SigningKey,
    *,
    migrated_database_url: str,
    make_headers: Callable[[localoidc.RunningProvider, SigningKey], dict[str, str]],
    error: str | None,
) -> None:
    headers = {"Origin": ORIGIN, **make_headers(oidc, signing_key)}

    responses = [
        api.post("/patients", json=make_patient(), headers=headers),
        api.get("/patients", headers=headers),
        api.get("/patients/1", headers=headers),
        api.delete("/patients/1", headers=headers),
        api.get("/me", headers=headers),
    ]

    for response in responses:
        status = 403 if error == "insufficient_scope" else 401
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error_code"] == ("FORBIDDEN" if status == 403 else "UNAUTHENTICATED")
        assert set(body) == {"detail", "message", "error_code", "request_id"}
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "WWW-Authenticate" in response.headers["access-control-expose-headers"]
    assert counts(migrated_database_url) == (0, 0)


def test_two_authorization_headers_are_refused(
    api: TestClient, oidc: localoidc.RunningProvider
) -> None:
    token = oidc.token("reader")
    response = api.get(
        "/patients",
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
    )
    assert response.status_code == 401


def test_a_token_in_the_query_string_is_ignored(
    api: TestClient, oidc: localoidc.RunningProvider
) -> None:
    token = oidc.token("reader")
    response = api.get(f"/patients?access_token={token}")
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


def test_public_routes_and_preflights_need_no_token(api: TestClient) -> None:
    assert api.get("/health").status_code == 200
    assert api.get("/docs").status_code == 200
    assert api.get("/docs/assets/swagger-ui.css").status_code == 200
    document = api.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["entraBearer"]["scheme"] == "bearer"
    assert document["paths"]["/health"]["get"]["security"] == []

    preflight = api.options(
        "/patients/1",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


def test_only_an_admin_deletes_and_manages_users(
    api: TestClient, oidc: localoidc.RunningProvider, migrated_database_url: str
) -> None:
    reader, admin = bearer(oidc.token("reader")), bearer(oidc.token("admin"))
    record = api.post("/patients", json=make_patient(), headers=reader).json()
    reader_id = api.get("/me", headers=reader).json()["id"]

    refused = api.delete(f"/patients/{record['id']}", headers=reader)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert api.get("/users", headers=reader).status_code == 403
    assert (
        api.patch(f"/users/{reader_id}", json={"isAdmin": True}, headers=reader).status_code == 403
    )
    assert counts(migrated_database_url) == (1, 1)

    me = api.get("/me", headers=admin).json()
    assert me["isAdmin"] is True
    assert "users:admin" in me["permissions"]
    listed = api.get("/users", headers=admin)
    assert listed.headers["x-total-count"] == "2"
    assert [user["objectId"] for user in listed.json()] == [READER_OID, ADMIN_OID]
    assert [(user["isAdmin"], user["hasAdminRole"]) for user in listed.json()] == [
        (False, False),
        (False, True),  # an admin through the Registry.Admin role in its token
    ]

    promoted = api.patch(f"/users/{reader_id}", json={"isAdmin": True}, headers=admin)
    assert promoted.status_code == 200
    assert promoted.json()["isAdmin"] is True
    # At once on this instance: the reader's cached right was dropped.
    assert api.delete(f"/patients/{record['id']}", headers=reader).status_code == 200

    demoted = api.patch(f"/users/{reader_id}", json={"isAdmin": False}, headers=admin)
    assert demoted.json()["isAdmin"] is False
    assert api.get("/users", headers=reader).status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"isAdmin": "yes"}, 400, id="not a boolean"),
        pytest.param({"isAdmin": True, "email": "x@y"}, 400, id="another field"),
        pytest.param({}, 400, id="nothing"),
    ],
)
def test_a_bad_user_change_is_refused(
    api: TestClient, oidc: localoidc.RunningProvider, body: dict[str, Any], status: int
) -> None:
    admin = bearer(oidc.token("admin"))
    admin_id = api.get("/me", headers=admin).json()["id"]
    response = api.patch(f"/users/{admin_id}", json=body, headers=admin)
    assert response.status_code == status
    assert response.json()["error_code"] == "VALIDATION_ERROR"


def test_admins_cannot_lock_themselves_or_configured_admins_out(
    api: TestClient, oidc: localoidc.RunningProvider
) -> None:
    admin = bearer(oidc.token("admin"))
    configured = bearer(oidc.token("configured-admin"))
    admin_me = api.get("/me", headers=admin).json()
    configured_me = api.get("/me", headers=configured).json()
    assert configured_me["isAdmin"] is True  # from ADMIN_OBJECT_IDS, no role in its token

    own = api.patch(f"/users/{admin_me['id']}", json={"isAdmin": False}, headers=admin)
    other = api.patch(f"/users/{configured_me['id']}", json={"isAdmin": False}, headers=admin)
    missing = api.patch("/users/999999", json={"isAdmin": True}, headers=admin)

    assert (own.status_code, other.status_code, missing.status_code) == (409, 409, 404)
    assert "ADMIN_OBJECT_IDS" in other.json()["detail"]


def test_an_app_with_the_role_may_read(api: TestClient, oidc: localoidc.RunningProvider) -> None:
    headers = bearer(oidc.token("app"))
    assert api.get("/patients", headers=headers).status_code == 200
    assert (
        api.get("/me", headers=headers).json()["objectId"] == "4a2b8c3d-5e6f-4a7b-9c8d-9e0f1a2b3c4d"
    )


def test_a_v1_token_of_the_tenant_is_accepted(api: TestClient, signing_key: SigningKey) -> None:
    token = signing_key.sign(user_claims(version="1.0", oid=READER_OID))
    assert api.get("/patients", headers=bearer(token)).status_code == 200


def test_names_follow_the_token_and_last_seen_is_not_written_per_request(
    api: TestClient, oidc: localoidc.RunningProvider, migrated_database_url: str
) -> None:
    reader = bearer(oidc.token("reader"))
    api.get("/patients", headers=reader)
    first = query(migrated_database_url, "SELECT last_seen_at, xmin::text AS version FROM users")
    for _ in range(30):
        assert api.get("/patients", headers=reader).status_code == 200
    assert (
        query(migrated_database_url, "SELECT last_seen_at, xmin::text AS version FROM users")
        == first
    )

    renamed = api.get("/me", headers=bearer(oidc.token("reader-renamed"))).json()
    row = query(migrated_database_url, "SELECT display_name, email FROM users")
    assert row == [{"display_name": "Rita Reader-Smith", "email": "rita.smith@clinic.test"}]
    assert renamed["displayName"] == "Rita Reader-Smith"


def test_contract_of_errors_is_documented(api: TestClient) -> None:
    codes = api.get("/openapi.json").json()["components"]["schemas"]["Error"]["properties"]
    assert {"UNAUTHENTICATED", "FORBIDDEN", "IDENTITY_PROVIDER_UNAVAILABLE"} <= set(
        codes["error_code"]["enum"]
    )


def test_a_new_random_kid_flood_fetches_the_keys_a_bounded_number_of_times(
    api: TestClient, oidc: localoidc.RunningProvider
) -> None:
    api.get("/patients", headers=bearer(oidc.token("reader")))
    before = oidc.requests_to(oidc.jwks_path)
    started = time.monotonic()
    forged = SigningKey.generate()
    for _ in range(1000):
        token = forged.sign(provider_claims(oidc), kid=uuid.uuid4().hex)
        assert api.get("/patients/1", headers=bearer(token)).status_code == 401
    elapsed = time.monotonic() - started
    fetches = oidc.requests_to(oidc.jwks_path) - before
    # One download per cooldown (0.5 s in these tests; 10 s by default) at most.
    assert 1 <= fetches <= 1 + elapsed / 0.5


def test_paths_that_look_public_are_not(api: TestClient) -> None:
    for path in (
        "/docs/assets/../patients",
        "/docs/assets/%2e%2e/patients/1",
        "/health/../patients",
    ):
        response = api.get(path)
        assert response.status_code in (401, 404), path
        assert "patientID" not in response.text


def test_no_token_reaches_the_logs_at_any_level(
    migrated_database_url: str,
    oidc: localoidc.RunningProvider,
    signing_key: SigningKey,
    capfd: pytest.CaptureFixture[str],
) -> None:
    good = oidc.token("admin")
    expired = signing_key.sign(provider_claims(oidc, lifetime=-600))
    with client_for(
        migrated_database_url,
        auth_mode="entra",
        entra=entra_settings_for(oidc.authority_host),
        log_level="DEBUG",
    ) as debug_api:
        assert debug_api.post("/patients", json=make_patient(), headers=bearer(good)).is_success
        assert debug_api.get("/users", headers=bearer(good)).is_success
        assert debug_api.get("/patients", headers=bearer(expired)).status_code == 401
        assert debug_api.get("/patients", headers={"Authorization": "Bearer x.y.z"}).is_error
    output = "".join(capfd.readouterr())
    assert "signing keys downloaded" in output  # the logs were captured
    for token in (good, expired):
        for part in token.split("."):
            assert part not in output


def test_anonymous_access_in_production_is_allowed_on_purpose_and_warned_about(
    migrated_database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with client_for(
        migrated_database_url,
        environment="production",
        allow_anonymous_access=True,
        cors_origins=(ORIGIN,),
    ) as anonymous_api:
        me = anonymous_api.get("/me").json()
        users = anonymous_api.get("/users")
    warnings = [
        json.loads(line)
        for line in capfd.readouterr().err.splitlines()
        if line.startswith("{") and '"WARNING"' in line
    ]
    assert any("AUTH_MODE=none in production" in line["message"] for line in warnings)
    assert (me["anonymous"], me["isAdmin"], me["id"]) == (True, False, None)
    assert me["permissions"] == ["patients:delete", "patients:read", "patients:write"]
    assert users.status_code == 403
