"""python -m seed import PATH | export [PATH]  (`python -m seed PATH` imports too)"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys

import asyncpg

from api.settings import Settings, SettingsError
from seed import exporter, importer, reader

COMMANDS = ("import", "export")
EXIT_FAILED = 1
EXIT_REJECTS = 3
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] not in COMMANDS and not arguments[0].startswith("-"):
        arguments.insert(0, "import")  # the skeleton's `python -m seed PATH`
    args = _parser().parse_args(arguments)
    try:
        settings = Settings.from_environ(os.environ)
        if args.command == "export":
            return _export(settings, args)
        return _import(settings, args)
    except (SettingsError, reader.DbJsonError, ConnectionError) as error:
        print(f"seed: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        print(f"seed: error: database unavailable: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        # One line, never a traceback: the import ran in one transaction, rolled back.
        print(f"seed: error: the database refused: {_first_line(error)}; nothing was written",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("seed: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _import(settings: Settings, args: argparse.Namespace) -> int:
    options = importer.Options(
        path=pathlib.Path(args.path),
        database_url=settings.database_url,
        upsert=args.mode == "upsert",
        dry_run=args.dry_run,
        report=pathlib.Path(args.report) if args.report else None,
        wait_seconds=settings.db_wait_seconds,
        pooled=settings.pooled,
    )
    summary = asyncio.run(importer.run(options, _say, sys.stderr))
    counts = summary.counts
    _say(
        f"{summary.read} patients read: {counts['inserted']} inserted, {counts['updated']} updated,"
        f" {counts['unchanged']} unchanged, {counts['rejected']} rejected"
        + (" (dry run: nothing written)" if options.dry_run else "")
    )
    kept = "would be kept" if options.dry_run else "kept"
    for name, size in summary.collections.items():
        _say(f"top-level {name!r} ({size} entries) is not imported; {kept} in import_rejects")
    if summary.run_id is not None and (counts["rejected"] or summary.collections):
        _say(
            f"rejected records are kept verbatim: SELECT * FROM import_rejects "
            f"WHERE run_id = {summary.run_id} ORDER BY position"
        )
    return EXIT_REJECTS if args.strict and counts["rejected"] else 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    target = None if args.path in (None, "-") else pathlib.Path(args.path)
    count = asyncio.run(
        exporter.export(settings.database_url, target, sys.stdout, pooled=settings.pooled)
    )
    if target is not None:
        _say(f"{count} patients written to {target}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seed", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("import", help="import the patients of a json-server db.json")
    load.add_argument("path", help="a json-server db.json file")
    load.add_argument(
        "--mode",
        choices=("insert", "upsert"),
        default="insert",
        help="insert: stored records with other values are rejected (default); "
        "upsert: they are updated",
    )
    load.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
    load.add_argument("--report", metavar="FILE", help="write a JSON report of every bucket")
    load.add_argument(
        "--strict", action="store_true", help=f"exit {EXIT_REJECTS} when any record was rejected"
    )
    dump = commands.add_parser("export", help="write the registry as a json-server db.json")
    dump.add_argument("path", nargs="?", help="target file (default: standard output)")
    return parser


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _say(message: str) -> None:
    print(f"seed: {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
