"""python -m seed PATH: import the patients of a json-server db.json; a re-run changes nothing."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from api import store
from api.settings import Settings, SettingsError
from seed import dbjson


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seed", description=__doc__)
    parser.add_argument("path", help="a json-server db.json file")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_environ(os.environ)
        loaded = dbjson.load(args.path)
        for name, count in loaded.ignored.items():
            _say(f"not importing top-level {name!r} ({count} entries): only patients are imported")
        inserted, skipped = asyncio.run(_import(settings, loaded))
    except (SettingsError, dbjson.DbJsonError, store.StoreUnavailable) as error:
        print(f"seed: error: {error}", file=sys.stderr)
        return 1
    except store.UNAVAILABLE_ERRORS as error:
        print(f"seed: error: database unavailable: {error}", file=sys.stderr)
        return 1
    _say(f"{len(loaded.patients)} patients read: {inserted} inserted, {skipped} already present")
    return 0


async def _import(settings: Settings, loaded: dbjson.DbJson) -> tuple[int, int]:
    db = store.open_database(settings)
    await db.connect()
    try:
        await store.wait_until_reachable(db, settings.db_wait_seconds, _say)
        return await store.import_patients(db, loaded.patients)
    finally:
        await store.disconnect(db, settings.shutdown_timeout_seconds)


def _say(message: str) -> None:
    print(f"seed: {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
