"""Signing keys over the provider's life: rotation without a restart, outages, a late start."""

from __future__ import annotations

import contextlib
import pathlib
import time

import pytest

from api import keys
from localpg import free_port
from tests.identity import SigningKey, user_claims
from tests.integration.conftest import client_for
from tests.integration.helpers import make_patient, query
from tests.signin import READER_OID, bearer, entra_settings_for, serving

COOLDOWN_SECONDS = 0.5


def test_a_rotated_key_is_accepted_without_a_restart_and_outages_keep_cached_keys(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    old, new = SigningKey.generate("old-key"), SigningKey.generate("new-key")
    port = free_port()
    with contextlib.ExitStack() as first_provider:
        provider = first_provider.enter_context(serving(tmp_path / "before.log", old, port=port))
        settings = entra_settings_for(provider.authority_host)
        issuer = provider.issuer
        old_token = provider.token("reader")
        with client_for(migrated_database_url, auth_mode="entra", entra=settings) as api:
            assert api.get("/patients", headers=bearer(old_token)).status_code == 200
            first_provider.close()  # the provider stops; the API keeps running

            with serving(tmp_path / "after.log", new, old, port=port) as rotated:
                time.sleep(COOLDOWN_SECONDS)
                new_token = rotated.token("reader")
                assert api.get("/patients", headers=bearer(new_token)).status_code == 200
                assert api.get("/patients", headers=bearer(old_token)).status_code == 200
                assert rotated.requests_to(rotated.jwks_path) == 1

            # The provider is down: tokens signed with a cached key still work, even ones
            # never seen before; a token naming a key nobody can fetch now is a 503, not a 401.
            unseen = new.sign(user_claims(iss=issuer, oid=READER_OID, name="Unseen"))
            assert api.get("/patients", headers=bearer(unseen)).status_code == 200
            time.sleep(COOLDOWN_SECONDS)
            unknown = SigningKey.generate("rotated-later").sign(user_claims(iss=issuer))
            down = api.post(
                "/patients",
                json=make_patient(),
                headers={**bearer(unknown), "Origin": "http://localhost:5173"},
            )
            assert down.status_code == 503
            assert down.json()["error_code"] == "IDENTITY_PROVIDER_UNAVAILABLE"
            assert down.headers["retry-after"] == "5"
            assert down.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert query(migrated_database_url, "SELECT count(*) AS n FROM patients")[0]["n"] == 0


def test_the_api_starts_while_the_provider_is_down_and_recovers_when_it_is_up(
    migrated_database_url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "RETRY_AFTER_FAILURE_SECONDS", 0.3)
    key = SigningKey.generate("late-key")
    port = free_port()
    authority = f"http://127.0.0.1:{port}"
    settings = entra_settings_for(authority)
    token = key.sign(user_claims(iss=f"{authority}/{settings.tenant_id}/v2.0", oid=READER_OID))

    with client_for(migrated_database_url, auth_mode="entra", entra=settings) as api:
        assert api.get("/health").status_code == 200
        refused = api.get("/patients", headers=bearer(token))
        assert refused.status_code == 503
        assert refused.json()["error_code"] == "IDENTITY_PROVIDER_UNAVAILABLE"

        with serving(tmp_path / "late.log", key, port=port):
            time.sleep(0.4)
            assert api.get("/patients", headers=bearer(token)).status_code == 200
