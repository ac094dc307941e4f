"""scripts/localoidc.py against the real oidc-provider: Entra's URLs, claims, keys and rollover."""

from __future__ import annotations

import json
import pathlib
import urllib.request
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

import localoidc

ADMIN_ROLE = "Registry.Admin"


@pytest.fixture(scope="module")
def node_dir() -> pathlib.Path:
    try:
        return localoidc.install()
    except localoidc.OidcUnavailable as unavailable:
        pytest.skip(str(unavailable))


@pytest.fixture(scope="module")
def config() -> localoidc.ProviderConfig:
    alice = localoidc.user("alice", roles=[ADMIN_ROLE], name="Alice")
    return localoidc.ProviderConfig.new(alice, localoidc.user("bob"))


@pytest.fixture(scope="module")
def provider(
    node_dir: pathlib.Path,
    config: localoidc.ProviderConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[localoidc.RunningProvider]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with localoidc.serving(config, log=log, node_dir=node_dir) as running:
        yield running


def served_keys(provider: localoidc.RunningProvider) -> dict[str, jwt.PyJWK]:
    with urllib.request.urlopen(provider.jwks_uri, timeout=5) as response:
        jwks = jwt.PyJWKSet.from_dict(json.load(response))
    return {key.key_id: key for key in jwks.keys if key.key_id}


def verified(provider: localoidc.RunningProvider, token: str, audience: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = served_keys(provider)[kid]
    claims: dict[str, Any] = jwt.decode(
        token, key=key, algorithms=["RS256"], audience=audience, issuer=provider.issuer
    )
    return claims


def test_discovery_names_the_entra_issuer_and_keys_url(
    provider: localoidc.RunningProvider,
) -> None:
    tenant_url = f"{provider.authority_host}/{provider.tenant_id}"
    assert provider.issuer == f"{tenant_url}/v2.0"
    assert provider.jwks_uri == f"{tenant_url}/discovery/v2.0/keys"
    assert provider.jwks_path == f"/{provider.tenant_id}/discovery/v2.0/keys"


def test_token_verifies_with_the_served_key_and_carries_entra_claims(
    provider: localoidc.RunningProvider, config: localoidc.ProviderConfig
) -> None:
    claims = verified(provider, provider.token("alice"), config.api_client_id)
    alice = config.client("alice").claims
    assert claims["aud"] == config.api_client_id
    assert claims["tid"] == config.tenant_id
    assert claims["ver"] == "2.0"
    assert claims["azp"] == "alice"
    assert claims["nbf"] <= claims["iat"] < claims["exp"] == claims["iat"] + 3600
    expected = {"oid": alice["oid"], "name": "Alice", "preferred_username": "alice@example.org"}
    assert expected.items() <= claims.items()
    assert (claims["scp"], claims["roles"]) == ("Patients.ReadWrite", [ADMIN_ROLE])


def test_token_without_roles_has_no_roles_claim(
    provider: localoidc.RunningProvider, config: localoidc.ProviderConfig
) -> None:
    claims = verified(provider, provider.token("bob"), config.api_client_id)
    assert "roles" not in claims
    assert claims["oid"] == config.client("bob").claims["oid"]


def test_token_header_names_the_first_key(
    provider: localoidc.RunningProvider, config: localoidc.ProviderConfig
) -> None:
    header = jwt.get_unverified_header(provider.token("alice"))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": config.keys[0]["kid"]}


def test_graph_token_has_graph_audience(provider: localoidc.RunningProvider) -> None:
    token = provider.token("alice", resource=localoidc.GRAPH_RESOURCE)
    assert verified(provider, token, localoidc.GRAPH_AUDIENCE)["aud"] == localoidc.GRAPH_AUDIENCE


def test_unknown_resource_is_refused(provider: localoidc.RunningProvider) -> None:
    with pytest.raises(localoidc.ProviderFailed, match="invalid_target"):
        provider.token("alice", resource="api://someone-else")


def test_requests_to_counts_key_fetches(provider: localoidc.RunningProvider) -> None:
    before = provider.requests_to(provider.jwks_path)
    served_keys(provider)
    served_keys(provider)
    assert provider.requests_to(provider.jwks_path) == before + 2


def test_restart_with_a_new_first_key_publishes_both_and_signs_with_it(
    node_dir: pathlib.Path, config: localoidc.ProviderConfig, tmp_path: pathlib.Path
) -> None:
    old = config.keys[0]
    with localoidc.serving(config, log=tmp_path / "old.log", node_dir=node_dir) as before:
        old_token = before.token("alice")
    rolled = config.with_keys(localoidc.new_rsa_jwk("key-2"), old)
    log = tmp_path / "new.log"
    with localoidc.serving(rolled, log=log, port=before.port, node_dir=node_dir) as after:
        new_token = after.token("alice")
        assert set(served_keys(after)) == {"key-2", old["kid"]}
        assert jwt.get_unverified_header(new_token)["kid"] == "key-2"
        assert verified(after, old_token, config.api_client_id)["azp"] == "alice"


def test_minted_token_verifies_with_the_public_half_of_its_key() -> None:
    key = localoidc.new_rsa_jwk("minted")
    token = localoidc.mint(key, {"aud": "api", "oid": "someone"})
    assert jwt.get_unverified_header(token)["kid"] == "minted"
    public = jwt.PyJWK(localoidc.public_jwk(key))
    assert jwt.decode(token, key=public, algorithms=["RS256"], audience="api")["oid"] == "someone"
