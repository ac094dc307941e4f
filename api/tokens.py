"""Microsoft Entra ID access tokens: a token and the key it names -> a Principal, or why not.

No I/O: the signing keys come from api.keys. The reasons of InvalidToken and InsufficientScope
are shown to clients, so they never hold key material or claim values.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jwt

from api.settings import EntraSettings

ALGORITHM = "RS256"
CLOCK_SKEW_SECONDS = 60
# Entra access tokens are 1-4 KB; one with many group claims stays well under this.
MAX_TOKEN_LENGTH = 16_384
SAFE_KEY_ID = re.compile(r"[A-Za-z0-9._~+/=-]{1,128}")
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REQUIRED_CLAIMS = ("exp", "iss", "aud", "tid", "oid")


class InvalidToken(ValueError):
    """The token is missing, malformed, expired or not trusted (401 invalid_token)."""


class InsufficientScope(ValueError):
    """The token is valid but grants neither the scope nor the app role (403)."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for: a user (delegated) or an application (app-only)."""

    tenant_id: str
    object_id: str
    display_name: str | None
    username: str | None
    roles: frozenset[str]
    scopes: frozenset[str]
    expires_at: float

    @property
    def app_only(self) -> bool:
        """An application calling as itself: `roles` and no `scp` (Entra's client credentials)."""
        return not self.scopes


def key_id(token: str) -> str:
    """The `kid` of a token's header, once the header says RS256: read before any key is
    fetched, so `alg: none`, HMAC and tokens without a key id cost no network."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("The bearer token is too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("The bearer token is not a well-formed JWT") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"The bearer token must be signed with {ALGORITHM}")
    if "nonce" in header:
        # Microsoft Graph's tokens carry a nonce in their header; only Graph can verify them.
        raise InvalidToken("The bearer token is for Microsoft Graph; request this API's scope")
    kid = header.get("kid")
    if not isinstance(kid, str) or not SAFE_KEY_ID.fullmatch(kid):
        raise InvalidToken("The bearer token names no valid signing key (kid)")
    return kid


def verify(token: str, key: jwt.PyJWK, entra: EntraSettings) -> Principal:
    """Check the signature, lifetime, audience, tenant and issuer of an access token.

    v1.0 and v2.0 tokens are both accepted (the API's app registration picks the version):
    v2's issuer is `{authority}/{tid}/v2.0`, v1's `https://sts.windows.net/{tid}/`.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[ALGORITHM],
            audience=list(entra.audiences),
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": list(REQUIRED_CLAIMS), "verify_iss": False},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The bearer token has expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("The bearer token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("The bearer token is for another audience") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("The bearer token's signature is invalid") from None
    except jwt.MissingRequiredClaimError as error:
        raise InvalidToken(f"The bearer token has no {error.claim} claim") from None
    except jwt.PyJWTError:
        raise InvalidToken("The bearer token is malformed or not trusted") from None
    return _principal(claims, entra)


def authorize(principal: Principal, entra: EntraSettings) -> None:
    """A user's token needs the API's delegated scope in `scp`; an application's token (no
    `scp`) needs the API's application role in `roles`."""
    if principal.app_only:
        if entra.app_role not in principal.roles:
            raise InsufficientScope(f"The token lacks the application role {entra.app_role}")
    elif entra.scope not in principal.scopes:
        raise InsufficientScope(f"The token lacks the scope {entra.scope}")


def _principal(claims: dict[str, Any], entra: EntraSettings) -> Principal:
    tenant_id = claims["tid"]
    if not isinstance(tenant_id, str) or tenant_id.lower() not in entra.allowed_tenants:
        raise InvalidToken("The bearer token's tenant is not allowed")
    tenant_id = tenant_id.lower()
    issuers = (f"{entra.authority_host}/{tenant_id}/v2.0", f"{entra.v1_issuer_host}/{tenant_id}/")
    if claims["iss"] not in issuers:
        raise InvalidToken("The bearer token's issuer is not trusted")
    object_id = claims["oid"]
    if not isinstance(object_id, str) or not GUID.fullmatch(object_id.lower()):
        raise InvalidToken("The bearer token has no valid oid claim")
    return Principal(
        tenant_id=tenant_id,
        object_id=object_id.lower(),
        display_name=_text(claims.get("name")) or None,
        username=_text(
            claims.get("preferred_username") or claims.get("upn") or claims.get("unique_name")
        )
        or None,
        roles=frozenset(role for role in _list(claims.get("roles")) if isinstance(role, str)),
        scopes=frozenset(_text(claims.get("scp"), limit=None).split()),
        expires_at=float(claims["exp"]),
    )


def _text(value: object, limit: int | None = 200) -> str:
    """A claim's text, trimmed to what the users table keeps; "" when absent or not text."""
    return value.strip()[:limit] if isinstance(value, str) else ""


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
