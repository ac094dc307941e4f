"""Sign-in for the tests: a real OpenID provider (oidc-provider, scripts/localoidc.py) issuing
Entra-shaped access tokens for a few users and apps, and the API settings that trust it."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

import localoidc
from api.settings import EntraSettings
from tests.identity import CLIENT, TENANT, SigningKey

READER_OID = "1d9e5f0a-2b3c-4d4e-8f5a-6b7c8d9e0f1a"
ADMIN_OID = "2e0f6a1b-3c4d-4e5f-9a6b-7c8d9e0f1a2b"
CONFIGURED_ADMIN_OID = "3f1a7b2c-4d5e-4f6a-8b7c-8d9e0f1a2b3c"
APP_OID = "4a2b8c3d-5e6f-4a7b-9c8d-9e0f1a2b3c4d"
SCOPE = "Patients.ReadWrite"


def client(client_id: str, **claims: Any) -> localoidc.Client:
    return localoidc.Client(client_id, f"{client_id}-secret", claims)


CLIENTS = (
    client(
        "reader",
        oid=READER_OID,
        name="Rita Reader",
        preferred_username="rita@clinic.test",
        scp=SCOPE,
    ),
    client(
        "reader-renamed",
        oid=READER_OID,
        name="Rita Reader-Smith",
        preferred_username="rita.smith@clinic.test",
        scp=SCOPE,
    ),
    client(
        "admin",
        oid=ADMIN_OID,
        name="Ada Admin",
        preferred_username="ada@clinic.test",
        scp=SCOPE,
        roles=["Registry.Admin"],
    ),
    client(
        "configured-admin",
        oid=CONFIGURED_ADMIN_OID,
        name="Carl Configured",
        preferred_username="carl@clinic.test",
        scp=SCOPE,
    ),
    client("no-scope", oid="5b3c9d4e-6f7a-4b8c-8d9e-0f1a2b3c4d5e", scp="User.Read"),
    client("app", oid=APP_OID, roles=["Patients.ReadWrite.All"]),
    client("app-without-role", oid="6c4d0e5f-7a8b-4c9d-9e0f-1a2b3c4d5e6f", roles=["Other.Role"]),
)


def bearer(token: str) -> dict[str, str]:
    """The request headers that carry `token`."""
    return {"Authorization": f"Bearer {token}"}


def provider_config(*keys: SigningKey) -> localoidc.ProviderConfig:
    """The provider's configuration; it signs with the first key and publishes all of them."""
    return localoidc.ProviderConfig(
        tenant_id=TENANT,
        api_client_id=CLIENT,
        keys=tuple(key.private_jwk() for key in keys),
        clients=CLIENTS,
        access_token_ttl=3600,
    )


def entra_settings_for(authority_host: str, **overrides: Any) -> EntraSettings:
    """The API's settings trusting the test provider at `authority_host`."""
    values: dict[str, Any] = {
        "client_id": CLIENT,
        "tenant_id": TENANT,
        "allowed_tenants": (TENANT,),
        "audiences": (CLIENT, f"api://{CLIENT}"),
        "authority_host": authority_host,
        "keys_cooldown_seconds": 0.5,
    }
    return EntraSettings(**{**values, **overrides})


def api_environment(authority_host: str) -> dict[str, str]:
    """The environment that runs our API (docker/serve) trusting the test provider."""
    return {
        "AUTH_MODE": "entra",
        "ENTRA_AUTHORITY_HOST": authority_host,
        "ENTRA_TENANT_ID": TENANT,
        "ENTRA_CLIENT_ID": CLIENT,
    }


@contextlib.contextmanager
def serving(
    log: pathlib.Path, *keys: SigningKey, port: int | None = None
) -> Iterator[localoidc.RunningProvider]:
    try:
        localoidc.install()
    except localoidc.OidcUnavailable as error:
        pytest.skip(f"sign-in tests need a real OpenID provider: {error}")
    with localoidc.serving(provider_config(*keys), port=port, log=log) as provider:
        yield provider


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("registry-test-key-1")


@pytest.fixture(scope="session")
def oidc(
    signing_key: SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[localoidc.RunningProvider]:
    """One provider for the session's tests that do not stop or rotate it."""
    with serving(tmp_path_factory.mktemp("oidc") / "provider.log", signing_key) as provider:
        yield provider
