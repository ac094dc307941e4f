"""The native stack behind scripts/dev: local PostgreSQL 17, migrator, seed, then uvicorn.
With --auth, also a local OpenID provider, and the API in AUTH_MODE=entra trusting it."""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
from types import FrameType

import psycopg
from psycopg import sql

import localoidc
import localpg

REPO = pathlib.Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".cache" / "pg17"
STATE_DIR = pathlib.Path(os.environ.get("DEV_STATE_DIR", REPO / ".local"))
DATABASE = "registry"
TOKEN_HOURS = 8


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cluster = localpg.Cluster(
        bin_dir=localpg.ensure_binaries(CACHE_DIR), data_dir=STATE_DIR / "pgdata", port=args.pg_port
    )
    started_here = _start(cluster)
    try:
        url = _ensure_database(cluster)
        env = {**os.environ, "DATABASE_URL": url}
        _run([sys.executable, "-m", "migrator"], env)
        _run([sys.executable, "-m", "seed", args.seed_file], env)
        _say(f"PostgreSQL 17 at {url}")
        if not _port_free(args.host, args.port):
            _say(
                f"error: port {args.port} is in use (another API?): stop it, or run "
                f"API_PORT={args.port + 1} scripts/dev"
            )
            return 1
        with contextlib.ExitStack() as stack:
            if args.auth:
                env |= _sign_in(stack, args)
            _say(f"Patient Registry API at http://{args.host}:{args.port}/patients (Ctrl-C stops)")
            return _serve(args, env)
    except subprocess.CalledProcessError as error:
        _say(f"{' '.join(error.cmd[1:3])} failed with exit code {error.returncode}")
        return 1
    finally:
        if started_here:
            cluster.stop()
            _say("PostgreSQL stopped")


def _start(cluster: localpg.Cluster) -> bool:
    if cluster.running():
        _say(f"reusing the PostgreSQL already running from {cluster.data_dir}")
        return False
    if not cluster.initialized():
        cluster.init()
    cluster.start(log_file=STATE_DIR / "postgres.log")
    return True


def _ensure_database(cluster: localpg.Cluster) -> str:
    with psycopg.connect(cluster.url(), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if exists.fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return cluster.url(DATABASE)


def _sign_in(stack: contextlib.ExitStack, args: argparse.Namespace) -> dict[str, str]:
    """Start the local OpenID provider with a clinician and an administrator, print their
    tokens and how to use them, and return the API's sign-in settings."""
    config = localoidc.ProviderConfig.new(
        localoidc.user("clinician", name="Casey Clinician"),
        localoidc.user("admin", name="Avery Admin", roles=["Registry.Admin"]),
        access_token_ttl=TOKEN_HOURS * 3600,
    )
    provider = stack.enter_context(
        localoidc.serving(config, log=STATE_DIR / "oidc-provider.log", port=args.oidc_port)
    )
    api = f"http://{args.host}:{args.port}"
    clinician = config.client("clinician")
    _say(f"sign-in: a local OpenID provider at {provider.issuer} (AUTH_MODE=entra)")
    _say(f"clinician's token ({TOKEN_HOURS} h): export TOKEN={provider.token('clinician')}")
    _say(f"administrator's token ({TOKEN_HOURS} h): export ADMIN_TOKEN={provider.token('admin')}")
    _say(f'try: curl -H "Authorization: Bearer $TOKEN" {api}/me')
    _say(
        f"a new token: curl -s -d grant_type=client_credentials -d client_id=clinician "
        f"-d client_secret={clinician.client_secret} -d resource={config.api_resource} "
        f"{provider.discovery['token_endpoint']}"
    )
    return {
        "AUTH_MODE": "entra",
        "ENTRA_AUTHORITY_HOST": provider.authority_host,
        "ENTRA_TENANT_ID": provider.tenant_id,
        "ENTRA_CLIENT_ID": config.api_client_id,
    }


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _run(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, cwd=REPO, env=env, check=True)


def _serve(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Run uvicorn until it exits; Ctrl-C or SIGTERM is passed on once, as SIGINT.

    uvicorn runs in its own session so a terminal's Ctrl-C reaches it only through us: a second
    SIGINT would make it skip its graceful shutdown.
    """
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.app:create_app",
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--no-access-log",
        ],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return server.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/dev", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address of the API (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("API_PORT", "8000")),
        help="port of the API (API_PORT, default 8000)",
    )
    parser.add_argument(
        "--pg-port",
        type=int,
        default=int(os.environ.get("PG_PORT", "54329")),
        help="port of the local PostgreSQL 17 (PG_PORT, default 54329); its data stays in "
        ".local/ (DEV_STATE_DIR): delete that folder to start over with an empty database",
    )
    parser.add_argument(
        "--seed-file", default=str(REPO / "seed" / "db.json"),
        help="the db.json imported at every start; records already there are skipped "
        "(default seed/db.json)",
    )  # fmt: skip
    parser.add_argument(
        "--auth",
        action="store_true",
        help="sign-in without an Azure tenant: a local OpenID provider, AUTH_MODE=entra, "
        "and printed tokens for curl",
    )
    parser.add_argument(
        "--oidc-port", type=int, default=int(os.environ.get("OIDC_PORT", "8401")),
        help="port of the local OpenID provider with --auth (OIDC_PORT, default 8401)",
    )  # fmt: skip
    return parser


def _say(message: str) -> None:
    print(f"dev: {message}", flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (localpg.LocalPgError, localoidc.OidcUnavailable, localoidc.ProviderFailed) as error:
        _say(f"error: {error}")
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C while migrating or seeding: they say what they undid
        _say("interrupted")
        sys.exit(130)
