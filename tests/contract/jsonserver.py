"""json-server 0.17.4, the reference: installed once per lock file, run on a copy of a db.json.

The package.json and package-lock.json beside this module pin json-server and its whole tree to
the versions the reference (shared/json-server-0.17.4.md) was measured with: its dependencies
float within `^` ranges, and edge cases (list limits, query parsing) depend on them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from localpg import free_port
from tests.contract import servers

PACKAGE = pathlib.Path(__file__).resolve().parent / "json-server"
PACKAGE_FILES = ("package.json", "package-lock.json")
INSTALL_DIR = servers.REPO / ".cache" / "json-server"
BIN = pathlib.Path("node_modules", "json-server", "lib", "cli", "bin.js")
STAMP = ".lock-sha256"
NPM_CI = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
NPM_TIMEOUT_SECONDS = 300


class InstallFailed(AssertionError):
    """npm could not install the pinned json-server."""


def install(install_dir: pathlib.Path = INSTALL_DIR) -> pathlib.Path:
    """The path of json-server's bin.js, installed with `npm ci` unless the lock is unchanged.

    The install happens in a scratch folder next to `install_dir` that replaces it only once
    `npm ci` succeeded, so an interrupted install is never mistaken for a complete one.
    """
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"contract tests need `{tool}` (Node.js 20) on PATH to run json-server")
    digest = _lock_digest()
    if _installed_digest(install_dir) != digest:
        _install(install_dir, digest)
    return install_dir / BIN


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


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in PACKAGE_FILES:
        digest.update((PACKAGE / name).read_bytes())
    return digest.hexdigest()


def _installed_digest(install_dir: pathlib.Path) -> str | None:
    if not (install_dir / BIN).is_file():
        return None
    try:
        return (install_dir / STAMP).read_text(encoding="ascii").strip()
    except OSError:
        return None


def _install(install_dir: pathlib.Path, digest: str) -> None:
    install_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="json-server.", dir=install_dir.parent))
    scratch.chmod(0o755)
    try:
        for name in PACKAGE_FILES:
            shutil.copyfile(PACKAGE / name, scratch / name)
        result = subprocess.run(
            NPM_CI,
            cwd=scratch,
            env={**os.environ, "npm_config_update_notifier": "false"},
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise InstallFailed(
                f"`{' '.join(NPM_CI)}` failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
        (scratch / STAMP).write_text(digest, encoding="ascii")
        _replace(install_dir, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _replace(install_dir: pathlib.Path, scratch: pathlib.Path) -> None:
    """Swap the new install in with renames; the old one, if any, is removed afterwards."""
    retired = scratch.with_name(scratch.name + ".old")
    if install_dir.exists():
        install_dir.rename(retired)
    scratch.rename(install_dir)
    shutil.rmtree(retired, ignore_errors=True)
