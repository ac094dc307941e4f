"""python -m migrator [apply | rollback [--steps N] | status]"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
import yoyo.exceptions

from api.settings import Settings, SettingsError
from migrator import runner


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_environ(os.environ)
        runner.wait_for_database(settings.database_url, settings.db_wait_seconds, _say)
        return _run(args, settings.database_url)
    except (
        SettingsError,
        runner.MigratorError,
        psycopg.Error,
        yoyo.exceptions.LockTimeout,
    ) as error:
        print(f"migrator: error: {_first_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("migrator: interrupted; each migration is one transaction", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, url: str) -> int:
    if args.command == "rollback":
        rolled_back = runner.rollback(url, args.steps)
        for migration_id in rolled_back:
            _say(f"rolled back {migration_id}")
        _say(f"rolled back {len(rolled_back)} migration(s)")
    elif args.command == "status":
        waiting = runner.pending(url)
        for migration_id in waiting:
            _say(f"pending {migration_id}")
        _say(f"{len(waiting)} migration(s) pending")
    else:
        applied = runner.apply(url)
        for migration_id in applied:
            _say(f"applied {migration_id}")
        _say(f"applied {len(applied)} migration(s); the database is up to date")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m migrator", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("apply", help="apply pending migrations (the default)")
    rollback = commands.add_parser("rollback", help="roll back the latest migrations")
    rollback.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    commands.add_parser("status", help="list pending migrations")
    return parser


def _say(message: str) -> None:
    print(f"migrator: {message}", flush=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
