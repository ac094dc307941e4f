import pytest

from api.settings import Settings, SettingsError, normalize_database_url, redact, with_driver

PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://registry:s3cure-Value@db.internal:5432/registry",
    "CORS_ORIGINS": "https://clinic.example.org",
}


def test_defaults_serve_local_development() -> None:
    settings = Settings.from_environ({})
    assert settings.environment == "development"
    assert settings.cors_origins == ("*",)
    assert settings.database_url.startswith("postgresql://")


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
    ],
)
def test_from_environ_names_the_bad_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_environ(environ)
