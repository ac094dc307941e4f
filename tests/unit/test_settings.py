import pytest

from api.settings import Settings, SettingsError, normalize_database_url, redact, with_driver

PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://registry:s3cure-Value@db.internal:5432/registry",
    "CORS_ORIGINS": "https://clinic.example.org",
    "AUTH_MODE": "entra",
    "ENTRA_TENANT_ID": "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
    "ENTRA_CLIENT_ID": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
ENTRA = {key: value for key, value in PRODUCTION.items() if key.startswith(("AUTH", "ENTRA"))}


def test_defaults_serve_local_development() -> None:
    settings = Settings.from_environ({})
    assert settings.environment == "development"
    assert settings.cors_origins == ("*",)
    assert settings.database_url.startswith("postgresql://")
    assert settings.db_pooler == "none"
    assert not settings.pooled


def test_db_pooler_pgbouncer_marks_the_connections_pooled() -> None:
    settings = Settings.from_environ({"DB_POOLER": "PgBouncer "})
    assert settings.db_pooler == "pgbouncer"
    assert settings.pooled


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("postgres://u:p@h:5432/db", "postgresql://u:p@h:5432/db", id="render's form"),
        pytest.param("postgresql://u:p@h/db", "postgresql://u:p@h/db", id="libpq's form"),
        pytest.param("postgresql+asyncpg://u@h/db", "postgresql://u@h/db", id="a dialect form"),
        pytest.param(
            " postgres://u@h/db?sslmode=require ",
            "postgresql://u@h/db?sslmode=require",
            id="with spaces and options",
        ),
    ],
)
def test_normalize_database_url_accepts_the_usual_forms(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("mysql://u@h/db", "must start with", id="another database"),
        pytest.param("postgresql://u@h", "no database name", id="no database"),
        pytest.param("postgresql:///db", "no host", id="no host"),
        pytest.param("not a url", "must start with", id="not a URL"),
    ],
)
def test_normalize_database_url_refuses_what_it_cannot_use(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        normalize_database_url(url)


def test_redact_hides_the_password_only() -> None:
    assert redact("postgresql://u:hunter2@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_with_driver_names_the_dialect() -> None:
    assert with_driver("postgresql://u@h/db", "psycopg") == "postgresql+psycopg://u@h/db"


def test_production_with_explicit_settings_starts() -> None:
    settings = Settings.from_environ(PRODUCTION)
    assert settings.production
    assert settings.cors_origins == ("https://clinic.example.org",)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"CORS_ORIGINS": "*"}, "CORS_ORIGINS", id="wildcard CORS"),
        pytest.param(
            {"DATABASE_URL": "postgresql://registry:changeme@db/registry"},
            "placeholder password",
            id="a placeholder password",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://registry@db/registry"},
            "placeholder password",
            id="no password",
        ),
        pytest.param({"AUTH_MODE": "none"}, "ALLOW_ANONYMOUS_ACCESS", id="anonymous access"),
        pytest.param(
            {"ENTRA_AUTHORITY_HOST": "http://login.example.org"},
            "ENTRA_AUTHORITY_HOST must be an https",
            id="an authority over plain http",
        ),
        pytest.param({"METRICS": "on"}, "METRICS_TOKEN", id="metrics on without a token"),
    ],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_environ({**PRODUCTION, **overrides})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({"APP_ENV": "staging"}, "APP_ENV", id="an unknown environment"),
        pytest.param({"DB_POOL_MAX": "many"}, "DB_POOL_MAX", id="a pool size that is no number"),
        pytest.param({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MIN", id="min above max"),
        pytest.param({"CORS_ORIGINS": "clinic.example.org"}, "http", id="an origin without scheme"),
        pytest.param({"CORS_ALLOW_CREDENTIALS": "maybe"}, "true or false", id="a vague boolean"),
        pytest.param({"DB_TIMEOUT_SECONDS": "0"}, "between", id="a zero timeout"),
        pytest.param({"LOG_LEVEL": "loud"}, "LOG_LEVEL", id="an unknown log level"),
        pytest.param({"DB_POOLER": "pgpool"}, "DB_POOLER", id="a pooler we do not support"),
        pytest.param({"METRICS": "maybe"}, "METRICS must be true or false", id="vague metrics"),
        pytest.param({"METRICS_TOKEN": "x" * 31}, "METRICS_TOKEN", id="a short metrics token"),
        pytest.param(
            {"METRICS_TOKEN": "a" * 32 + " b"}, "METRICS_TOKEN", id="a metrics token with a space"
        ),
    ],
)
def test_from_environ_names_the_bad_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_environ(environ)


def test_metrics_are_off_unless_asked_and_open_in_development() -> None:
    assert not Settings.from_environ({}).metrics
    assert not Settings.from_environ(PRODUCTION).metrics
    development = Settings.from_environ({"METRICS": "on"})
    assert development.metrics
    assert development.metrics_token is None


def test_production_serves_metrics_with_a_token_that_never_shows_in_a_repr() -> None:
    token = "9f2c" * 16
    settings = Settings.from_environ({**PRODUCTION, "METRICS": "on", "METRICS_TOKEN": token})
    assert settings.metrics
    assert settings.metrics_token == token
    assert token not in repr(settings)


def test_production_allows_anonymous_access_only_when_asked() -> None:
    settings = Settings.from_environ(
        {**PRODUCTION, "AUTH_MODE": "none", "ALLOW_ANONYMOUS_ACCESS": "true"}
    )
    assert settings.anonymous
    assert settings.entra is None


def test_entra_defaults_accept_both_token_versions_of_the_configured_tenant() -> None:
    entra = Settings.from_environ(ENTRA).entra

    assert entra is not None
    assert entra.tenant_id == TENANT
    assert entra.allowed_tenants == (TENANT,)
    assert entra.audiences == (CLIENT, f"api://{CLIENT}")
    assert entra.authority_host == "https://login.microsoftonline.com"
    assert entra.v1_issuer_host == "https://sts.windows.net"
    assert (entra.scope, entra.app_role, entra.admin_role) == (
        "Patients.ReadWrite",
        "Patients.ReadWrite.All",
        "Registry.Admin",
    )
    assert entra.discovery_url == (
        f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    )


def test_entra_settings_for_a_sovereign_cloud_and_several_tenants() -> None:
    other = "0f5b8a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    entra = Settings.from_environ(
        {
            **ENTRA,
            "ENTRA_TENANT_ID": "organizations",
            "ENTRA_ALLOWED_TENANTS": f"{TENANT}, {other.upper()}",
            "ENTRA_AUTHORITY_HOST": "https://login.microsoftonline.us/",
            "ENTRA_AUDIENCES": "api://registry",
            "ADMIN_OBJECT_IDS": other,
        }
    )
    assert entra.entra is not None
    assert entra.entra.allowed_tenants == (TENANT, other)
    assert entra.entra.authority_host == "https://login.microsoftonline.us"
    assert entra.entra.audiences == ("api://registry",)
    assert entra.admin_object_ids == frozenset({other})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"AUTH_MODE": "saml"}, "AUTH_MODE", id="an unknown mode"),
        pytest.param({"ENTRA_CLIENT_ID": ""}, "ENTRA_CLIENT_ID must be a GUID", id="no client id"),
        pytest.param({"ENTRA_TENANT_ID": "contoso"}, "ENTRA_TENANT_ID", id="a tenant name"),
        pytest.param(
            {"ENTRA_TENANT_ID": "common"}, "ENTRA_ALLOWED_TENANTS", id="common without a list"
        ),
        pytest.param(
            {"ENTRA_AUTHORITY_HOST": "https://login.microsoftonline.com/tenant"},
            "ENTRA_AUTHORITY_HOST",
            id="an authority with a path",
        ),
        pytest.param({"ENTRA_SCOPE": "Patients Read"}, "ENTRA_SCOPE", id="a scope with a space"),
        pytest.param({"ADMIN_OBJECT_IDS": "alice"}, "ADMIN_OBJECT_IDS", id="an admin by name"),
    ],
)
def test_entra_settings_name_the_bad_variable(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_environ({**ENTRA, **overrides})
