"""Test isolation: no test touches the user's home, workspace or ledger."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kavi.stages.common import Forge
from kavi.workspace import Workspace, init_workspace

# Temporary folders kavi makes for one operation and must remove when it ends, whatever the outcome. A demo
# workspace made without --path is left on purpose (the user explores it), and so is a build kept with
# --keep-sandbox or waiting for a person; a test that makes one cleans it up itself.
OPERATION_TEMPORARIES = ("kavi-build-", "kavi-verify-", "kavi-run-", "kavi-claude-")


# Test files whose tests xdist may hand to different workers one by one (the rest go a whole file at a time,
# so a module's expensive fixtures are made once), and which go first: the crash harness, one long test per
# scenario; the queue's two workers verifying twenty proposals.
SPREAD_BY_TEST = (
    "tests/integrity/test_integrity_crash.py",
    "tests/integrity/test_integrity_concurrency.py",
    "tests/workers/test_spread.py",
)
# Files whose one or few tests take long: scheduled first, so that no worker is left alone with one at the end.
LONG_FILES = ("tests/stages/test_regate.py", "tests/stages/test_optimize.py", "tests/server/test_pages_browser.py")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent when xdist is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, except that each test of a file in SPREAD_BY_TEST is a work unit of its own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesAndSpreadTests(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return nodeid if file in SPREAD_BY_TEST else file

    return FilesAndSpreadTests(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The spread tests and the long files go first: no worker should be left alone with one at the end."""
    first = SPREAD_BY_TEST + LONG_FILES
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in first)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent when xdist is not loaded
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: half again as many workers as CPUs. Most tests wait on subprocesses (gates, servers, a
    browser, Postgres), so two workers on two cores leave a third of the machine idle."""
    return max(2, (os.cpu_count() or 1) * 3 // 2)


@pytest.fixture(scope="session", autouse=True)
def _session_temp_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every temporary folder of this session, kavi's and its subprocesses', goes into one folder of its own
    (TMPDIR), removed at the end: the suite leaves the system's temp folder as it found it. A folder of one
    of kavi's operations still there at the end is a leak, and fails the session."""
    tmp_path_factory.getbasetemp()  # pytest's own tmp_path folders stay where pytest keeps them
    root = Path(tempfile.mkdtemp(prefix="kavi-tests-"))
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(root)
    tempfile.tempdir = None  # forget the cached answer, so the next gettempdir() reads TMPDIR
    try:
        yield root
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
        tempfile.tempdir = None
        leaked = sorted(path.name for path in root.iterdir() if path.name.startswith(OPERATION_TEMPORARIES))
        shutil.rmtree(root, ignore_errors=True)
    if leaked:
        pytest.fail(f"{len(leaked)} temporary folder(s) outlived the operation that made them: {leaked[:10]}")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAVI_TESTING", "1")
    monkeypatch.delenv("KAVI_WORKSPACE", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def ledger_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` unless a test asks for both backends with ``tests.support.BOTH_BACKENDS`` (indirect
    parametrization): then the ``workspace`` and ``trusted`` fixtures put their ledger on a real Postgres."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def server_ledger_url(ledger_backend: str, request: pytest.FixtureRequest) -> str | None:
    """A fresh Postgres database for this test's workspace, or None on SQLite."""
    if ledger_backend == "sqlite":
        return None
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database()
    return url


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_ledger_url: str | None) -> Workspace:
    ws, _ = init_workspace(tmp_path / "ws", ledger_url=server_ledger_url)
    Forge.open(ws).close()  # as `kavi init` does: the ledger exists from the start
    monkeypatch.setenv("KAVI_WORKSPACE", str(ws.root))
    return ws


@pytest.fixture
def forge(workspace: Workspace) -> Iterator[Forge]:
    opened = Forge.open(workspace)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server for this test process (see tests/postgres.py); skipped where none can start,
    failed under CI=true."""
    from tests.postgres import server_or_skip

    server = server_or_skip()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A fresh, empty database on the session's server: a URL for `[ledger] url`."""
    url: str = postgres_server.create_database()
    return url
