"""A real, throwaway PostgreSQL server for the tests (issue 14).

One cluster per test process (per xdist worker): ``initdb --no-sync`` in a temporary folder, a unix socket in
that folder, no TCP listener, fsync off. Each test gets a database of its own from :func:`fresh_database`.

Under ``CI=true`` a server that cannot start is a failure, not a skip: CI installs Debian's postgresql, so a
missing server there means the install step broke, and skipping would hide it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "kavi"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the server did not start."""


def server_bindir() -> Path:
    """Where initdb and pg_ctl are: $KAVI_PG_BINDIR, `pg_config --bindir`, Debian's versioned folder, PATH."""
    configured = os.environ.get("KAVI_PG_BINDIR")
    candidates: list[Path] = [Path(configured)] if configured else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql")


def _as_server_user() -> tuple[Callable[[], None] | None, int | None]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` account (or nobody)."""
    if os.geteuid() != 0:
        return None, None
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        account = pwd.getpwnam("nobody")
    uid, gid = account.pw_uid, account.pw_gid

    def demote() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return demote, uid


@dataclass
class PostgresServer:
    root: Path
    bindir: Path
    preexec: Callable[[], None] | None

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy-style URL kavi's `[ledger] url` accepts (psycopg 3, unix socket)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                str(self.socket_dir),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=self.preexec,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
            preexec_fn=self.preexec,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    bindir = server_bindir()
    preexec, uid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="kavi-pg-"))
    (root / "sock").mkdir()
    if uid is not None:
        # the test session's own temporary folder is 0700 (mkdtemp): the server's account must pass through it
        base = Path(tempfile.gettempdir())
        if base.stat().st_uid == os.geteuid():
            base.chmod(base.stat().st_mode | 0o011)
        for path in (root, root / "sock"):
            os.chown(path, uid, -1)
        # The server's account must pass through the folder that holds ours (the session's private TMPDIR
        # is 0700): traverse only, nothing listed or readable.
        os.chmod(root.parent, root.parent.stat().st_mode | 0o001)
    data = root / "data"
    init = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "--no-sync",
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale",
            "C",
        ],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=preexec,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()}")
    options = (
        f"-k {root / 'sock'} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    start = subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start"],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=preexec,
    )
    if start.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"the server did not start: {start.stderr.strip()} {log[-2000:]}")
    return PostgresServer(root, bindir, preexec)


def server_or_skip() -> PostgresServer:
    """Start a server; skip when none can start here, except under CI=true where that fails."""
    try:
        return start_server()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
