import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from api import keys, tokens
from tests.identity import SigningKey

DISCOVERY = "https://login.example.org/tenant/v2.0/.well-known/openid-configuration"
JWKS = "https://login.example.org/tenant/discovery/v2.0/keys"
OLD = SigningKey.generate("old")
NEW = SigningKey.generate("new")


class Provider:
    """The identity provider's two documents, as fetch_json would return them; it can fail."""

    def __init__(self, *published: SigningKey) -> None:
        self.published = list(published)
        self.down = False
        self.fetched: list[str] = []

    def fetch(self, url: str) -> Any:
        self.fetched.append(url)
        if self.down:
            raise OSError("connection refused")
        if url == DISCOVERY:
            return {"issuer": "x", "jwks_uri": JWKS}
        return {"keys": [key.public_jwk() for key in self.published]}

    def key_fetches(self) -> int:
        return self.fetched.count(JWKS)


def run(provider: Provider, test: Callable[[keys.SigningKeys], Any], cooldown: float = 60) -> Any:
    async def main() -> Any:
        signing_keys = keys.SigningKeys(DISCOVERY, cooldown, fetch=provider.fetch)
        try:
            return await test(signing_keys)
        finally:
            await signing_keys.close()

    return asyncio.run(main())


def test_a_cached_key_is_served_without_a_download() -> None:
    provider = Provider(OLD)

    async def test(signing_keys: keys.SigningKeys) -> None:
        for _ in range(50):
            assert (await signing_keys.get("old")).key_id == "old"

    run(provider, test)
    assert provider.fetched == [DISCOVERY, JWKS]


def test_a_flood_of_unknown_kids_downloads_the_keys_once_per_cooldown() -> None:
    provider = Provider(OLD)

    async def test(signing_keys: keys.SigningKeys) -> list[BaseException | Any]:
        await signing_keys.get("old")
        return await asyncio.gather(
            *(signing_keys.get(f"random-{n}") for n in range(1000)), return_exceptions=True
        )

    outcomes = run(provider, test, cooldown=60)
    assert all(isinstance(outcome, tokens.InvalidToken) for outcome in outcomes)
    assert provider.key_fetches() == 1


def test_a_rotated_key_is_fetched_once_the_cooldown_has_passed() -> None:
    provider = Provider(OLD)

    async def test(signing_keys: keys.SigningKeys) -> None:
        await signing_keys.get("old")
        provider.published = [NEW, OLD]
        with pytest.raises(tokens.InvalidToken, match="unknown key"):
            await signing_keys.get("new")  # within the cooldown: not fetched again
        await asyncio.sleep(0.25)
        assert (await signing_keys.get("new")).key_id == "new"
        assert (await signing_keys.get("old")).key_id == "old"

    run(provider, test, cooldown=0.2)
    assert provider.key_fetches() == 2
    assert provider.fetched.count(DISCOVERY) == 1


def test_cached_keys_survive_an_outage_and_unknown_ones_are_unavailable() -> None:
    provider = Provider(OLD)

    async def test(signing_keys: keys.SigningKeys) -> None:
        await signing_keys.get("old")
        provider.down = True
        await asyncio.sleep(0.05)
        with pytest.raises(keys.KeysUnavailable):
            await signing_keys.get("new")
        assert (await signing_keys.get("old")).key_id == "old"
        with pytest.raises(keys.KeysUnavailable):
            await signing_keys.get("new")  # no new attempt within RETRY_AFTER_FAILURE_SECONDS

    run(provider, test, cooldown=0.01)
    assert provider.key_fetches() == 2


def test_a_provider_down_at_start_is_retried_and_then_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys, "RETRY_AFTER_FAILURE_SECONDS", 0.1)
    provider = Provider(OLD)
    provider.down = True

    async def test(signing_keys: keys.SigningKeys) -> None:
        signing_keys.refresh_in_background()
        await asyncio.sleep(0.05)
        with pytest.raises(keys.KeysUnavailable):
            await signing_keys.get("old")
        provider.down = False
        await asyncio.sleep(0.15)
        assert (await signing_keys.get("old")).key_id == "old"

    run(provider, test)


@pytest.mark.parametrize(
    ("document", "kids"),
    [
        pytest.param({"keys": [OLD.public_jwk(), NEW.public_jwk()]}, {"old", "new"}, id="two"),
        pytest.param(
            {"keys": [{**OLD.public_jwk(), "use": "enc"}, NEW.public_jwk()]},
            {"new"},
            id="an encryption key is skipped",
        ),
        pytest.param(
            {"keys": [{"kty": "EC", "kid": "ec", "crv": "P-256"}, {"kty": "RSA", "kid": "bad"}]},
            set(),
            id="unusable keys are skipped",
        ),
        pytest.param(
            {"keys": [{k: v for k, v in OLD.public_jwk().items() if k != "kid"}]},
            set(),
            id="a key without kid is skipped",
        ),
    ],
)
def test_parse_jwks_keeps_the_rsa_signing_keys(document: dict[str, Any], kids: set[str]) -> None:
    assert set(keys.parse_jwks(document)) == kids


@pytest.mark.parametrize("document", [{}, {"keys": "none"}, [], None])
def test_parse_jwks_refuses_a_document_without_keys(document: Any) -> None:
    with pytest.raises(ValueError, match="no keys"):
        keys.parse_jwks(document)
