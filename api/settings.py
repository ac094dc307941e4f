"""Settings.from_environ(environ): the only place that reads the environment."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Mapping

ENVIRONMENTS = ("development", "production")
DEFAULT_DATABASE_URL = "postgresql://registry:registry-local-dev@127.0.0.1:5432/registry"
# Passwords that only ever appear in examples and local defaults; production refuses them.
PLACEHOLDER_PASSWORDS = frozenset(
    {"", "changeme", "change-me", "password", "postgres", "secret", "registry-local-dev"}
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
AUTH_MODES = ("none", "entra")
# What sits between the components and PostgreSQL: nothing, or PgBouncer in transaction pooling
# mode, where a server connection serves one transaction and then another client's
# (docs/pgbouncer.md: what that changes).
POOLERS = ("none", "pgbouncer")
ENTRA_PUBLIC_CLOUD = "https://login.microsoftonline.com"
ENTRA_V1_ISSUER_HOST = "https://sts.windows.net"
# Tenant names Entra accepts in place of a tenant id for discovery (multi-tenant apps).
MULTI_TENANT_NAMES = ("common", "organizations")
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A bearer token's characters (RFC 6750's b64token): it goes verbatim into a scraper's header.
METRICS_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+")
METRICS_TOKEN_MIN_LENGTH = 32  # e.g. `openssl rand -hex 16`, or longer


class SettingsError(ValueError):
    """A configuration value is missing, malformed or unsafe."""


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    environment: str = "development"
    cors_origins: tuple[str, ...] = ("*",)
    cors_allow_credentials: bool = True
    log_level: str = "INFO"
    db_pool_min: int = 0
    db_pool_max: int = 10
    db_timeout_seconds: float = 5.0
    db_pooler: str = "none"
    health_timeout_seconds: float = 2.0
    shutdown_timeout_seconds: float = 10.0
    max_body_bytes: int = 1_048_576
    list_memory_mb: int = 256
    db_wait_seconds: float = 60.0
    auth_mode: str = "none"
    allow_anonymous_access: bool = False
    entra: EntraSettings | None = None
    admin_object_ids: frozenset[str] = frozenset()
    audit_trail: bool = True
    metrics: bool = False
    metrics_token: str | None = dataclasses.field(default=None, repr=False)  # a secret

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        get = environ.get
        auth_mode = _choice("AUTH_MODE", get("AUTH_MODE", "none").strip().lower(), AUTH_MODES)
        settings = cls(
            database_url=normalize_database_url(get("DATABASE_URL", DEFAULT_DATABASE_URL)),
            environment=_choice("APP_ENV", get("APP_ENV", "development"), ENVIRONMENTS),
            cors_origins=_origins(get("CORS_ORIGINS", "*")),
            cors_allow_credentials=_bool(
                "CORS_ALLOW_CREDENTIALS", get("CORS_ALLOW_CREDENTIALS", "true")
            ),
            log_level=_choice("LOG_LEVEL", get("LOG_LEVEL", "INFO").upper(), LOG_LEVELS),
            db_pool_min=_int("DB_POOL_MIN", get("DB_POOL_MIN", "0"), minimum=0),
            db_pool_max=_int("DB_POOL_MAX", get("DB_POOL_MAX", "10"), minimum=1),
            db_timeout_seconds=_float("DB_TIMEOUT_SECONDS", get("DB_TIMEOUT_SECONDS", "5")),
            db_pooler=_choice("DB_POOLER", get("DB_POOLER", "none").strip().lower(), POOLERS),
            health_timeout_seconds=_float(
                "HEALTH_TIMEOUT_SECONDS", get("HEALTH_TIMEOUT_SECONDS", "2")
            ),
            max_body_bytes=_int("MAX_BODY_BYTES", get("MAX_BODY_BYTES", "1048576"), minimum=1),
            list_memory_mb=_int("LIST_MEMORY_MB", get("LIST_MEMORY_MB", "256"), minimum=4),
            db_wait_seconds=_float("DB_WAIT_SECONDS", get("DB_WAIT_SECONDS", "60")),
            auth_mode=auth_mode,
            allow_anonymous_access=_bool(
                "ALLOW_ANONYMOUS_ACCESS", get("ALLOW_ANONYMOUS_ACCESS", "false")
            ),
            entra=EntraSettings.from_environ(environ) if auth_mode == "entra" else None,
            admin_object_ids=frozenset(_guids("ADMIN_OBJECT_IDS", get("ADMIN_OBJECT_IDS", ""))),
            audit_trail=_bool("AUDIT_TRAIL", get("AUDIT_TRAIL", "true")),
            metrics=_bool("METRICS", get("METRICS", "off")),
            metrics_token=_metrics_token(get("METRICS_TOKEN", "")),
        )
        settings.check()
        return settings

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def pooled(self) -> bool:
        """True behind PgBouncer in transaction pooling mode (DB_POOLER=pgbouncer): no session
        state (prepared statements, SET, session locks) outlives a transaction."""
        return self.db_pooler != "none"

    @property
    def anonymous(self) -> bool:
        """True when requests are not authenticated at all (AUTH_MODE=none)."""
        return self.auth_mode == "none"

    def check(self) -> None:
        """Refuse combinations that are unsafe or contradictory."""
        if self.db_pool_min > self.db_pool_max:
            raise SettingsError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        if self.auth_mode == "entra" and self.entra is None:
            raise SettingsError("AUTH_MODE=entra needs the ENTRA_* settings")
        if not self.production:
            return
        if "*" in self.cors_origins:
            raise SettingsError(
                "CORS_ORIGINS must list the allowed origins explicitly when APP_ENV=production"
            )
        password = urllib.parse.urlsplit(self.database_url).password or ""
        if password in PLACEHOLDER_PASSWORDS:
            raise SettingsError(
                "DATABASE_URL uses a placeholder password; set a real one for APP_ENV=production"
            )
        if self.anonymous and not self.allow_anonymous_access:
            raise SettingsError(
                "AUTH_MODE=none lets anyone read and change every patient: set AUTH_MODE=entra "
                "for APP_ENV=production (or ALLOW_ANONYMOUS_ACCESS=true, on purpose, for a "
                "migration period)"
            )
        if self.entra is not None:
            self.entra.check_production()
        if not self.audit_trail:
            raise SettingsError("AUDIT_TRAIL=false is for development only, not APP_ENV=production")
        if self.metrics and self.metrics_token is None:
            raise SettingsError(
                "METRICS=on would show the service's metrics to anyone who can reach the API: "
                "set METRICS_TOKEN for APP_ENV=production (the scraper sends it as a bearer token)"
            )


@dataclasses.dataclass(frozen=True)
class EntraSettings:
    """Which Microsoft Entra ID access tokens the API accepts (AUTH_MODE=entra)."""

    client_id: str
    tenant_id: str
    allowed_tenants: tuple[str, ...]
    authority_host: str = ENTRA_PUBLIC_CLOUD
    v1_issuer_host: str = ENTRA_V1_ISSUER_HOST
    audiences: tuple[str, ...] = ()
    scope: str = "Patients.ReadWrite"
    app_role: str = "Patients.ReadWrite.All"
    admin_role: str = "Registry.Admin"
    # Seconds between two key downloads for tokens signed with an unknown key id.
    keys_cooldown_seconds: float = 10.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EntraSettings:
        get = environ.get
        client_id = _guid("ENTRA_CLIENT_ID", get("ENTRA_CLIENT_ID", ""))
        tenant_id = get("ENTRA_TENANT_ID", "").strip().lower()
        if tenant_id not in MULTI_TENANT_NAMES:
            tenant_id = _guid("ENTRA_TENANT_ID", tenant_id)
        allowed = _guids("ENTRA_ALLOWED_TENANTS", get("ENTRA_ALLOWED_TENANTS", ""))
        if not allowed:
            if tenant_id in MULTI_TENANT_NAMES:
                raise SettingsError(
                    f"ENTRA_TENANT_ID={tenant_id} needs ENTRA_ALLOWED_TENANTS: the tenant ids "
                    "whose users may sign in"
                )
            allowed = (tenant_id,)
        audiences = tuple(_items(get("ENTRA_AUDIENCES", ""))) or (client_id, f"api://{client_id}")
        return cls(
            client_id=client_id,
            tenant_id=tenant_id,
            allowed_tenants=allowed,
            authority_host=_host(
                "ENTRA_AUTHORITY_HOST", get("ENTRA_AUTHORITY_HOST", ENTRA_PUBLIC_CLOUD)
            ),
            v1_issuer_host=_host(
                "ENTRA_V1_ISSUER_HOST", get("ENTRA_V1_ISSUER_HOST", ENTRA_V1_ISSUER_HOST)
            ),
            audiences=audiences,
            scope=_name("ENTRA_SCOPE", get("ENTRA_SCOPE", "Patients.ReadWrite")),
            app_role=_name("ENTRA_APP_ROLE", get("ENTRA_APP_ROLE", "Patients.ReadWrite.All")),
            admin_role=_name("ENTRA_ADMIN_ROLE", get("ENTRA_ADMIN_ROLE", "Registry.Admin")),
        )

    @property
    def discovery_url(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    def check_production(self) -> None:
        for name, host in (
            ("ENTRA_AUTHORITY_HOST", self.authority_host),
            ("ENTRA_V1_ISSUER_HOST", self.v1_issuer_host),
        ):
            if not host.startswith("https://"):
                raise SettingsError(f"{name} must be an https:// URL when APP_ENV=production")


def normalize_database_url(url: str) -> str:
    """Accept the URL forms Render and libpq hand out and return the plain `postgresql://` form.

    >>> normalize_database_url("postgres://u:p@h:5432/db")
    'postgresql://u:p@h:5432/db'
    """
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql"):
        raise SettingsError(
            "DATABASE_URL must start with postgresql:// or postgres:// "
            f"(got {parts.scheme or 'no scheme'}://)"
        )
    if not parts.hostname and "host=" not in parts.query:
        raise SettingsError("DATABASE_URL has no host")
    if not parts.path.strip("/"):
        raise SettingsError("DATABASE_URL has no database name")
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql"))


def with_driver(url: str, driver: str) -> str:
    """`postgresql://...` -> `postgresql+<driver>://...` for libraries that want a dialect."""
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


def redact(url: str) -> str:
    """The URL with its password replaced, safe for log lines and error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise SettingsError(
                f"CORS_ORIGINS entry {origin!r} must start with http:// or https://"
            )
    return origins


def _metrics_token(raw: str) -> str | None:
    """METRICS_TOKEN: None when unset; else a long bearer token (its value is never echoed)."""
    token = raw.strip()
    if not token:
        return None
    if len(token) < METRICS_TOKEN_MIN_LENGTH or not METRICS_TOKEN.fullmatch(token):
        raise SettingsError(
            f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters of letters, "
            "digits and ._~+/=- (e.g. the output of `openssl rand -hex 32`)"
        )
    return token


def _items(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _guid(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if not GUID.fullmatch(value):
        raise SettingsError(
            f"{name} must be a GUID such as 00000000-0000-0000-0000-000000000000 (got {raw!r})"
        )
    return value


def _guids(name: str, raw: str) -> tuple[str, ...]:
    return tuple(_guid(name, item) for item in _items(raw))


def _host(name: str, raw: str) -> str:
    """An authority such as https://login.microsoftonline.com: a scheme and a host, no path."""
    value = raw.strip().rstrip("/")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise SettingsError(f"{name} must be a URL such as {ENTRA_PUBLIC_CLOUD} (got {raw!r})")
    return value


def _name(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or any(character.isspace() for character in value):
        raise SettingsError(f"{name} must be one name without spaces (got {raw!r})")
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)} (got {raw!r})")
    return raw


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false (got {raw!r})")


def _int(name: str, raw: str, *, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number (got {raw!r})") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum} (got {value})")
    return value


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds (got {raw!r})") from None
    if not 0 < value <= 3600:
        raise SettingsError(f"{name} must be between 0 and 3600 seconds (got {value})")
    return value
