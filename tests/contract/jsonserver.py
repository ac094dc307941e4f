"""json-server 0.17.4, the reference: installed once per lock file, run on a copy of a db.json.

The package.json and package-lock.json beside this module pin json-server and its whole tree to
the versions the reference (shared/json-server-0.17.4.md) was measured with: its dependencies
float within `^` ranges, and edge cases (list limits, query parsing) depend on them.
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
from collections.abc import Iterator

import pytest

import npmcache
from localpg import free_port
from tests.contract import servers

PACKAGE = pathlib.Path(__file__).resolve().parent / "json-server"
PACKAGE_FILES = ("package.json", "package-lock.json")
INSTALL_DIR = servers.REPO / ".cache" / "json-server"
BIN = pathlib.Path("node_modules", "json-server", "lib", "cli", "bin.js")
InstallFailed = npmcache.InstallFailed


def install(install_dir: pathlib.Path = INSTALL_DIR) -> pathlib.Path:
    """The path of json-server's bin.js, installed with `npm ci` unless the lock is unchanged."""
    try:
        return npmcache.install(PACKAGE, PACKAGE_FILES, install_dir, BIN)
    except npmcache.NodeMissing as missing:
        pytest.skip(f"contract tests need `{missing.tool}` (Node.js 20) on PATH to run json-server")


@contextlib.contextmanager
def serving(
    bin_js: pathlib.Path, db_json: pathlib.Path, workdir: pathlib.Path, *, wait: bool = True
) -> Iterator[servers.Server]:
    """json-server on a copy of `db_json` in `workdir`, as `json-server db.json --port P --host`.

    `workdir` is also its working directory, so no `./public` folder of ours replaces its pages.
    """
    database = workdir / "db.json"
    shutil.copyfile(db_json, database)
    port = free_port()
    command = ["node", str(bin_js), str(database), "--port", str(port), "--host", "127.0.0.1"]
    with servers.started(
        "json-server",
        command,
        port=port,
        ready_path="/db",
        log=workdir / "json-server.log",
        cwd=workdir,
        wait=wait,
    ) as server:
        yield server
