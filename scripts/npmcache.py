"""npm packages pinned by a committed lock file, installed with `npm ci` once per lock change."""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

STAMP = ".lock-sha256"
NPM_CI = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
NPM_TIMEOUT_SECONDS = 300


class NodeMissing(RuntimeError):
    """`node` or `npm` is not on PATH."""

    def __init__(self, tool: str) -> None:
        super().__init__(f"`{tool}` (Node.js 20) is not on PATH")
        self.tool = tool


class InstallFailed(RuntimeError):
    """`npm ci` failed; the message carries the end of its output."""


def install(
    package: pathlib.Path, files: Sequence[str], install_dir: pathlib.Path, entry: pathlib.Path
) -> pathlib.Path:
    """`install_dir / entry`, after `npm ci` of `files` copied from `package` unless unchanged.

    The install happens in a scratch folder next to `install_dir` that replaces it only once
    `npm ci` succeeded, so an interrupted install is never mistaken for a complete one.
    """
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise NodeMissing(tool)
    digest = _digest(package, files)
    if _installed_digest(install_dir, entry) != digest:
        _install(package, files, install_dir, digest)
    return install_dir / entry


def _digest(package: pathlib.Path, files: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for name in files:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def _installed_digest(install_dir: pathlib.Path, entry: pathlib.Path) -> str | None:
    if not (install_dir / entry).is_file():
        return None
    try:
        return (install_dir / STAMP).read_text(encoding="ascii").strip()
    except OSError:
        return None


def _install(
    package: pathlib.Path, files: Sequence[str], install_dir: pathlib.Path, digest: str
) -> None:
    install_dir.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{install_dir.name}."
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=install_dir.parent))
    scratch.chmod(0o755)
    try:
        for name in files:
            shutil.copyfile(package / name, scratch / name)
        _npm_ci(scratch)
        (scratch / STAMP).write_text(digest, encoding="ascii")
        _replace(install_dir, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _npm_ci(folder: pathlib.Path) -> None:
    result = subprocess.run(
        NPM_CI,
        cwd=folder,
        env={**os.environ, "npm_config_update_notifier": "false"},
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise InstallFailed(
            f"`{' '.join(NPM_CI)}` in {folder} failed ({result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )


def _replace(install_dir: pathlib.Path, scratch: pathlib.Path) -> None:
    """Swap the new install in with renames; the old one, if any, is removed afterwards."""
    retired = scratch.with_name(scratch.name + ".old")
    if install_dir.exists():
        install_dir.rename(retired)
    scratch.rename(install_dir)
    shutil.rmtree(retired, ignore_errors=True)
