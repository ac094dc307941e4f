"""The identity provider's signing keys: discovered, downloaded off the event loop, cached.

Keys roll over without notice, so a token naming an unknown `kid` triggers a download, but at
most one per `cooldown` seconds however many such tokens arrive (concurrent ones share it): a
flood of made-up key ids cannot make the API hammer the provider. While the provider is down,
the keys already cached keep working; a token whose key cannot be fetched is KeysUnavailable
(503, not a 401 that would sign the user out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

from api import tokens

LOG = logging.getLogger(__name__)
FETCH_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 1_048_576
# Microsoft recommends refreshing the keys about daily; hourly costs nothing and picks up a
# revoked key sooner. The refresh runs in the background: requests keep the cached keys.
MAX_AGE_SECONDS = 3600.0
RETRY_AFTER_FAILURE_SECONDS = 5.0

Fetch = Callable[[str], Any]


class KeysUnavailable(Exception):
    """The signing keys could not be downloaded, and the token's key is not cached."""


class SigningKeys:
    """The provider's current RS256 keys by `kid`, from `{authority}/{tenant}/v2.0/.well-known/
    openid-configuration` and its `jwks_uri`."""

    def __init__(self, discovery_url: str, cooldown: float, fetch: Fetch | None = None) -> None:
        self._discovery_url = discovery_url
        self._cooldown = cooldown
        self._fetch = fetch or fetch_json
        self._keys: dict[str, jwt.PyJWK] = {}
        self._jwks_uri: str | None = None
        self._fetched_at = -math.inf  # monotonic time of the last successful download
        self._attempted_at = -math.inf  # ... and of the last attempt
        self._failed = False
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    async def get(self, kid: str) -> jwt.PyJWK:
        """The key named `kid`; InvalidToken when the provider does not publish it."""
        key = self._keys.get(kid)
        if key is not None:
            if time.monotonic() - self._fetched_at > MAX_AGE_SECONDS:
                self.refresh_in_background()
            return key
        await self.refresh()
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._failed:
            raise KeysUnavailable("the identity provider's signing keys cannot be downloaded")
        raise tokens.InvalidToken("The bearer token is signed with an unknown key")

    async def refresh(self) -> None:
        """Download the keys unless a download ended less than the cooldown ago (or, after a
        failure, less than RETRY_AFTER_FAILURE_SECONDS ago). Concurrent callers share one."""
        async with self._lock:
            wait = RETRY_AFTER_FAILURE_SECONDS if self._failed else self._cooldown
            if time.monotonic() - self._attempted_at < wait:
                return
            try:
                self._keys = await asyncio.to_thread(self._download)
            except Exception as error:  # the provider's outage must not become a 500
                self._failed = True
                LOG.warning(
                    "signing keys not downloaded; keeping %d cached: %s",
                    len(self._keys),
                    _describe(error),
                )
            else:
                self._failed = False
                self._fetched_at = time.monotonic()
                LOG.info("signing keys downloaded", extra={"keys": len(self._keys)})
            finally:
                self._attempted_at = time.monotonic()

    def refresh_in_background(self) -> None:
        """Start a refresh unless one is running (at start-up, and when the keys are old)."""
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self.refresh())

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)

    def _download(self) -> dict[str, jwt.PyJWK]:
        """Blocking: runs in a worker thread. The jwks_uri is discovered once and kept."""
        if self._jwks_uri is None:
            discovery = self._fetch(self._discovery_url)
            jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise ValueError("the discovery document has no jwks_uri")
            self._jwks_uri = jwks_uri
        return parse_jwks(self._fetch(self._jwks_uri))


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The RSA signing keys of a JWKS document by `kid`; other keys are skipped."""
    found = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(found, list):
        raise ValueError("the JWKS document has no keys")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in found:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", tokens.ALGORITHM) != "RS256":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=tokens.ALGORITHM)
        except jwt.PyJWTError:
            LOG.warning("skipping an unusable signing key")
    return keys


def fetch_json(url: str) -> Any:
    """GET a JSON document (blocking, bounded in time and size)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:300]
