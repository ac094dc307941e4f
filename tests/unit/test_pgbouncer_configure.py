"""docker/pgbouncer/configure.py: the PgBouncer image's config, rendered from the environment."""

from __future__ import annotations

import importlib.util
import pathlib
import types

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "docker" / "pgbouncer" / "configure.py"
URL = "postgresql://registry:s3cret@db:5432/registry"


def load() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("pgbouncer_configure", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


configure = load()


def settings(ini: str) -> dict[str, str]:
    pairs = (line.partition(" = ") for line in ini.splitlines())
    return {key: value for key, equals, value in pairs if equals}


def test_pgbouncer_configure_defaults_to_transaction_pooling_in_front_of_the_url() -> None:
    ini, userlist = configure.render({"DATABASE_URL": URL})
    values = settings(ini)

    assert values["registry"] == "host=db port=5432 dbname=registry"
    assert values["pool_mode"] == "transaction"
    assert values["max_prepared_statements"] == "200"
    assert values["listen_port"] == "6432"
    assert values["auth_type"] == "scram-sha-256"
    assert values["stats_users"] == "registry"
    assert "admin_users" not in values
    assert values["server_tls_sslmode"] == "prefer"
    assert userlist == '"registry" "s3cret"\n'
    assert "s3cret" not in ini


def test_pgbouncer_configure_reads_sizes_sslmode_and_escapes_the_password() -> None:
    url = "postgres://app%40x:pa%22ss@dpg-abc123-a.internal:6543/registry_prod?sslmode=require"
    ini, userlist = configure.render(
        {
            "DATABASE_URL": url,
            "PGBOUNCER_POOL_MODE": "session",
            "PGBOUNCER_DEFAULT_POOL_SIZE": "7",
            "PGBOUNCER_MAX_DB_CONNECTIONS": "9",
        }
    )
    values = settings(ini)

    assert values["registry_prod"] == "host=dpg-abc123-a.internal port=6543 dbname=registry_prod"
    assert values["pool_mode"] == "session"
    assert (values["default_pool_size"], values["max_db_connections"]) == ("7", "9")
    assert values["server_tls_sslmode"] == "require"
    assert userlist == '"app@x" "pa""ss"\n'


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({}, "DATABASE_URL must be a postgresql://", id="no url"),
        pytest.param(
            {"DATABASE_URL": "postgresql://registry@db/registry"},
            "a password",
            id="a url without a password",
        ),
        pytest.param(
            {"DATABASE_URL": URL, "PGBOUNCER_POOL_MODE": "transactions"},
            "PGBOUNCER_POOL_MODE",
            id="an unknown pool mode",
        ),
        pytest.param(
            {"DATABASE_URL": URL, "PGBOUNCER_MAX_CLIENT_CONN": "lots"},
            "PGBOUNCER_MAX_CLIENT_CONN must be a whole number",
            id="a size that is not a number",
        ),
        pytest.param(
            {"DATABASE_URL": URL, "PGBOUNCER_DEFAULT_POOL_SIZE": "30"},
            "must not exceed PGBOUNCER_MAX_DB_CONNECTIONS",
            id="a pool larger than the database allowance",
        ),
        pytest.param(
            {"DATABASE_URL": "postgresql://u:p@db/reg;istry"},
            "not a plain name",
            id="a database name PgBouncer cannot list",
        ),
        pytest.param(
            {"DATABASE_URL": URL + "?sslmode=sometimes"},
            "sslmode",
            id="an unknown sslmode",
        ),
    ],
)
def test_pgbouncer_configure_refuses_bad_settings_with_a_precise_message(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(configure.ConfigError, match=message):
        configure.render(environ)
