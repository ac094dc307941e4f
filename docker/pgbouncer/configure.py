"""Writes pgbouncer.ini and its userlist from the environment, then runs PgBouncer in its place.

The image holds no secret: the upstream password comes from DATABASE_URL at start and lands in
a 0600 file in a directory only this user can read.
"""

from __future__ import annotations

import os
import pathlib
import sys
import urllib.parse
from collections.abc import Mapping

CONFIG_DIR = pathlib.Path("/run/pgbouncer")
POOL_MODES = ("session", "transaction", "statement")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Each value: (environment variable, default). The defaults fit the compose scale profile's
# budget; compose.yaml and docs/fleet.md show the arithmetic.
NUMBERS = {
    "max_client_conn": ("PGBOUNCER_MAX_CLIENT_CONN", "100"),
    "default_pool_size": ("PGBOUNCER_DEFAULT_POOL_SIZE", "20"),
    "max_db_connections": ("PGBOUNCER_MAX_DB_CONNECTIONS", "20"),
    # > 0 lets asyncpg's and psycopg's named prepared statements work in transaction mode
    # (PgBouncer >= 1.21 prepares them again on whichever server connection runs them).
    "max_prepared_statements": ("PGBOUNCER_MAX_PREPARED_STATEMENTS", "200"),
    "listen_port": ("PGBOUNCER_PORT", "6432"),
}
# PgBouncer refuses a connection that sends any other startup parameter than the few it tracks.
# extra_float_digits: JDBC-style clients send it. Nothing else is dropped silently: with
# DB_POOLER=pgbouncer the API sets lock_timeout per transaction (SET LOCAL), not at start-up.
IGNORED_STARTUP_PARAMETERS = "extra_float_digits"


class ConfigError(ValueError):
    """A PgBouncer setting in the environment is missing or malformed."""


def render(environ: Mapping[str, str]) -> tuple[str, str]:
    """(pgbouncer.ini, userlist.txt) for the DATABASE_URL PgBouncer fronts.

    Clients connect to PgBouncer with the same user, password and database name as upstream.
    """
    upstream = _upstream(environ.get("DATABASE_URL", ""))
    pool_mode = environ.get("PGBOUNCER_POOL_MODE", "transaction")
    if pool_mode not in POOL_MODES:
        raise ConfigError(f"PGBOUNCER_POOL_MODE must be one of {', '.join(POOL_MODES)}")
    numbers = {key: _number(*NUMBERS[key], environ) for key in NUMBERS}
    if numbers["default_pool_size"] > numbers["max_db_connections"]:
        raise ConfigError(
            "PGBOUNCER_DEFAULT_POOL_SIZE must not exceed PGBOUNCER_MAX_DB_CONNECTIONS"
        )
    user, password, host, port, dbname, sslmode = upstream
    ini = "\n".join(
        [
            "[databases]",
            f"{dbname} = host={host} port={port} dbname={dbname}",
            "",
            "[pgbouncer]",
            "listen_addr = 0.0.0.0",
            "unix_socket_dir =",
            "auth_type = scram-sha-256",
            f"auth_file = {CONFIG_DIR / 'userlist.txt'}",
            # The app's own user may read SHOW POOLS/CLIENTS/SERVERS, not PAUSE or SHUTDOWN.
            f"stats_users = {user}",
            f"pool_mode = {pool_mode}",
            *(f"{key} = {value}" for key, value in numbers.items()),
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            f"server_tls_sslmode = {sslmode}",
            f"ignore_startup_parameters = {IGNORED_STARTUP_PARAMETERS}",
            # Health checks connect every few seconds; keep the log for what matters.
            "log_connections = 0",
            "log_disconnections = 0",
            "",
        ]
    )
    return ini, f"{_quote(user)} {_quote(password)}\n"


def _upstream(url: str) -> tuple[str, str, str, int, str, str]:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL of the database to pool")
    dbname = urllib.parse.unquote(parts.path.strip("/"))
    if not (parts.hostname and parts.username and parts.password and dbname):
        raise ConfigError("DATABASE_URL must name a host, a user, a password and a database")
    for name in (dbname, parts.hostname):
        if not name.replace("-", "_").replace(".", "_").isidentifier():
            raise ConfigError(f"DATABASE_URL: {name!r} is not a plain name PgBouncer can list")
    sslmode = urllib.parse.parse_qs(parts.query).get("sslmode", ["prefer"])[0]
    if sslmode not in SSL_MODES:
        raise ConfigError(f"DATABASE_URL: sslmode must be one of {', '.join(SSL_MODES)}")
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password)
    return user, password, parts.hostname, parts.port or 5432, dbname, sslmode


def _number(name: str, default: str, environ: Mapping[str, str]) -> int:
    raw = environ.get(name, default)
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1 (got {raw!r})")
    return int(raw)


def _quote(value: str) -> str:
    """auth_file quoting: the value in double quotes, each double quote doubled."""
    return '"' + value.replace('"', '""') + '"'


def main() -> None:
    try:
        ini, userlist = render(os.environ)
    except ConfigError as error:
        print(f"pgbouncer: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    for name, text in (("pgbouncer.ini", ini), ("userlist.txt", userlist)):
        path = CONFIG_DIR / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
    # PgBouncer replaces this process: it gets the signals and is the container's PID 1.
    os.execvp("pgbouncer", ["pgbouncer", str(CONFIG_DIR / "pgbouncer.ini")])  # noqa: S606


if __name__ == "__main__":
    main()
