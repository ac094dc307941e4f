"""Who is calling: the bearer token verified at the edge once per request (cached until it
expires), the caller put in the request's scope, and the one-line permission checks handlers ask.

AUTH_MODE=none has no edge at all: every request is ANONYMOUS, allowed what json-server allowed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from databases import Database
from starlette.types import ASGIApp, Receive, Scope, Send

from api import keys, store, tokens
from api.responses import ApiError, error_response
from api.settings import EntraSettings

K = TypeVar("K")
V = TypeVar("V")
LOG = logging.getLogger(__name__)
READ = "patients:read"
WRITE = "patients:write"
DELETE = "patients:delete"
ADMINISTER = "users:admin"
# Routes a browser or an orchestrator reaches before anyone signs in. /metrics has its own
# rule instead (METRICS_TOKEN): a scraper has no Entra ID token.
PUBLIC_PATHS = frozenset(("/health", "/docs", "/openapi.json", "/metrics"))
PUBLIC_PREFIX = "/docs/assets/"
CHALLENGE = 'Bearer realm="patient-registry"'
# A user's row is written (names, last seen) at most this often per instance; an admin right
# taken away on another instance therefore takes effect within this time (at once on this one).
USER_SYNC_SECONDS = 120.0
MAX_CACHED_TOKENS = 10_000
MAX_CACHED_USERS = 10_000
IDP_RETRY_AFTER_SECONDS = "5"


@dataclasses.dataclass(frozen=True)
class Caller:
    """The person or application a request runs for; `user_id` is its users row."""

    user_id: int | None
    tenant_id: str | None
    object_id: str | None
    display_name: str | None
    email: str | None
    is_admin: bool
    permissions: frozenset[str]

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    def to_wire(self) -> dict[str, object]:
        """GET /me: who the API takes the caller for, and what it may do."""
        return {
            "id": self.user_id,
            "tenantId": self.tenant_id,
            "objectId": self.object_id,
            "email": self.email,
            "displayName": self.display_name,
            "isAdmin": self.is_admin,
            "anonymous": self.anonymous,
            "permissions": sorted(self.permissions),
        }


ANONYMOUS = Caller(None, None, None, None, None, False, frozenset((READ, WRITE, DELETE)))
SIGNED_IN = frozenset((READ, WRITE))
ADMIN = frozenset((READ, WRITE, DELETE, ADMINISTER))


def caller(scope: Scope) -> Caller:
    """The request's caller, as the edge decided it (ANONYMOUS without AUTH_MODE=entra)."""
    found: Caller = scope.get("state", {}).get("caller", ANONYMOUS)
    return found


def require(scope: Scope, permission: str) -> Caller:
    """The caller, if it holds `permission`; else a 403 saying what is missing."""
    who = caller(scope)
    if permission not in who.permissions:
        raise forbidden(
            "Only an administrator may do this"
            if not who.anonymous
            else "This needs a signed-in administrator (AUTH_MODE=entra)"
        )
    return who


def forbidden(reason: str) -> ApiError:
    challenge = f'{CHALLENGE}, error="insufficient_scope"'
    return ApiError(403, "FORBIDDEN", reason, headers={"WWW-Authenticate": challenge})


def unauthenticated(reason: str, *, token_sent: bool = True) -> ApiError:
    """RFC 6750: no `error` attribute when the request carried no bearer token at all."""
    challenge = f'{CHALLENGE}, error="invalid_token"' if token_sent else CHALLENGE
    return ApiError(401, "UNAUTHENTICATED", reason, headers={"WWW-Authenticate": challenge})


def authorization(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """The values of the request's `Authorization` headers (ASGI names are lower-case)."""
    return [value for name, value in headers if name == b"authorization"]


def bearer_token(values: list[bytes]) -> str:
    """The token of the one `Authorization: Bearer <token>` header (a query string's
    `access_token` is never read: URLs end up in logs and browser history)."""
    if not values:
        raise unauthenticated("Sign in: send Authorization: Bearer <token>", token_sent=False)
    if len(values) > 1:
        raise unauthenticated("Send one Authorization header")
    if len(values[0]) > tokens.MAX_TOKEN_LENGTH + len(b"Bearer "):
        raise unauthenticated("The bearer token is too long")
    scheme, _, token = values[0].decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        raise unauthenticated(
            "Use the Bearer scheme: Authorization: Bearer <token>", token_sent=False
        )
    token = token.strip()
    if not token or any(character.isspace() for character in token):
        raise unauthenticated("The bearer token is not a well-formed JWT")
    return token


@dataclasses.dataclass(frozen=True)
class _Known:
    """A verified token and its caller, good until `fresh_until` (epoch seconds)."""

    principal: tokens.Principal
    caller: Caller
    fresh_until: float


@dataclasses.dataclass(frozen=True)
class _User:
    user_id: int
    stored_admin: bool
    admin_role: bool
    display_name: str | None
    email: str | None
    synced_at: float


class Authenticator:
    """Bearer token -> Caller. A token is verified once (signature, claims, scope) and then
    served from a bounded cache until it expires; its user's row is written at most every
    USER_SYNC_SECONDS, so the hot path does no I/O and no RSA."""

    def __init__(
        self,
        entra: EntraSettings,
        db: Database,
        admin_object_ids: frozenset[str],
        signing_keys: keys.SigningKeys,
    ) -> None:
        self.entra = entra
        self.keys = signing_keys
        self._db = db
        self._admins = admin_object_ids
        self._tokens: dict[bytes, _Known] = {}  # by Authorization header
        self._users: dict[tuple[str, str], _User] = {}

    async def caller(self, headers: Iterable[tuple[bytes, bytes]]) -> Caller:
        # The cache is keyed on the header's bytes, so a known token costs a dict lookup:
        # no decoding, no parsing, no RSA.
        values = authorization(headers)
        header = values[0] if len(values) == 1 else b""
        known = self._tokens.get(header)
        now = time.time()
        if known is not None and now < known.fresh_until:
            return known.caller
        principal = known.principal if known is not None else await self._verify(values)
        if principal.expires_at <= now - tokens.CLOCK_SKEW_SECONDS:
            self._tokens.pop(header, None)
            raise unauthenticated("The bearer token has expired")
        user = await self._user(principal, now)
        who = self._caller(principal, user)
        fresh_until = min(principal.expires_at, user.synced_at + USER_SYNC_SECONDS)
        _bounded_put(self._tokens, header, _Known(principal, who, fresh_until), MAX_CACHED_TOKENS)
        return who

    def forget(self, user_id: int) -> None:
        """Drop what is cached about a user whose admin right just changed."""
        for key in [key for key, user in self._users.items() if user.user_id == user_id]:
            del self._users[key]
        for token in [t for t, known in self._tokens.items() if known.caller.user_id == user_id]:
            del self._tokens[token]

    async def _verify(self, values: list[bytes]) -> tokens.Principal:
        token = bearer_token(values)
        try:
            key = await self.keys.get(tokens.key_id(token))
            principal = tokens.verify(token, key, self.entra)
            tokens.authorize(principal, self.entra)
        except tokens.InvalidToken as error:
            raise unauthenticated(str(error)) from None
        except tokens.InsufficientScope as error:
            raise forbidden(str(error)) from None
        except keys.KeysUnavailable:
            raise ApiError(
                503,
                "IDENTITY_PROVIDER_UNAVAILABLE",
                "The sign-in keys cannot be checked right now; retry later",
                headers={"Retry-After": IDP_RETRY_AFTER_SECONDS},
            ) from None
        return principal

    async def _user(self, principal: tokens.Principal, now: float) -> _User:
        key = (principal.tenant_id, principal.object_id)
        user = self._users.get(key)
        role = self.entra.admin_role in principal.roles
        if (
            user is None
            or now - user.synced_at >= USER_SYNC_SECONDS
            or _changed(user, principal, role)
        ):
            configured = principal.object_id in self._admins
            user_id, stored_admin = await store.sync_user(self._db, principal, configured, role)
            if user is None:
                LOG.info("user signed in", extra={"user_id": user_id})
            user = _User(
                user_id, stored_admin, role, principal.display_name, principal.username, now
            )
            _bounded_put(self._users, key, user, MAX_CACHED_USERS)
        return user

    def _caller(self, principal: tokens.Principal, user: _User) -> Caller:
        admin = user.stored_admin or user.admin_role
        return Caller(
            user_id=user.user_id,
            tenant_id=principal.tenant_id,
            object_id=principal.object_id,
            display_name=principal.display_name or user.display_name,
            email=principal.username or user.email,
            is_admin=admin,
            permissions=ADMIN if admin else SIGNED_IN,
        )


class Authenticate:
    """The edge of AUTH_MODE=entra: every request but the public routes needs a valid token.
    It sits inside EdgeMiddleware, so its 401/403/503 answers carry CORS headers and a request
    id, and preflights (answered there) never need a token."""

    def __init__(
        self, app: ASGIApp, *, authenticator: Authenticator, public: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.public(scope["path"]):
            try:
                scope["state"]["caller"] = await self.authenticator.caller(scope["headers"])
            except ApiError as error:
                response = error_response(error, scope["state"].get("request_id"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)


def _changed(user: _User, principal: tokens.Principal, admin_role: bool) -> bool:
    """The token says otherwise than the row: names (a claim left out changes nothing), role."""
    return (
        (principal.display_name or user.display_name) != user.display_name
        or (principal.username or user.email) != user.email
        or admin_role != user.admin_role
    )


def _bounded_put(cache: dict[K, V], key: K, value: V, most: int) -> None:
    """Insert; a full cache drops its oldest half first (cheap, and rare: one entry a user)."""
    if len(cache) >= most and key not in cache:
        for old in list(cache)[: most // 2]:
            del cache[old]
    cache[key] = value
