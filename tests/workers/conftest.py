"""Workspaces that share nothing but a PostgreSQL ledger, and workers started as separate processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.workspace import Workspace, init_workspace
from tests.support import WORD_COUNT_ARGS, run_cli


def shared_ledger_workspace(folder: Path, url: str, *, require_isolation: bool = False) -> Workspace:
    """A workspace of its own (its own artifact folder) whose ledger is the shared Postgres database."""
    ws, _ = init_workspace(folder)
    config = ws.root / "kavi.toml"
    text = config.read_text().replace('url = ".kavi/ledger.db"', f'url = "{url}"')
    if require_isolation:
        text = text.replace("require = false", "require = true")
    config.write_text(text)
    return ws


def word_count_recording(number: int, folder: Path) -> tuple[str, Path]:
    """The shipped word_count recording under another name (word_count_N, class WordCountN): proposals need
    distinct names."""
    name = f"word_count_{number}"
    target = folder / name / "skills"
    target.mkdir(parents=True)
    for source in (recording_of("word_count") / "skills").glob("*.py"):
        text = source.read_text().replace("word_count", name).replace("WordCount", f"WordCount{number}")
        (target / source.name.replace("word_count", name)).write_text(text)
    return name, target.parent


def propose_and_build(workspace: Workspace, number: int) -> str:
    """A word count proposal built by the replay builder, here (the requester's machine)."""
    name, recording = word_count_recording(number, workspace.root.parent / "recordings")
    args = list(WORD_COUNT_ARGS)
    args[args.index("word_count")] = name
    proposed = run_cli("propose-skill", *args, "--workspace", str(workspace.root), "--json")
    assert proposed.code == 0, proposed.stdout + proposed.stderr
    proposal: str = proposed.json()["proposal_id"]
    replay = str(recording)
    built = run_cli("build-skill", proposal, "--replay-from", replay, "--workspace", str(workspace.root), "--json")
    assert built.code == 0, built.stdout + built.stderr
    return proposal


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill_hard(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


class Workers:
    """Starts `kavi worker` processes, each in its own folder with its own temp folder and home."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[WorkerProcess] = []

    def start(
        self, name: str, workspace: Workspace, *, queues: str = "gates", env: dict[str, str] | None = None
    ) -> WorkerProcess:
        own = self.root / name
        (own / "tmp").mkdir(parents=True)
        (own / "home").mkdir()
        environment = {**os.environ, "TMPDIR": str(own / "tmp"), "HOME": str(own / "home"), **(env or {})}
        environment.pop("KAVI_WORKSPACE", None)
        log = own / "worker.log"
        argv = [sys.executable, "-m", "kavi", "worker", "--queues", queues, "--name", name]
        argv += ["--workspace", str(workspace.root), "--heartbeat", "0.5", "--stalled-after", "3"]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, cwd=workspace.root, env=environment, stdout=out, stderr=subprocess.STDOUT)
        worker = WorkerProcess(name, process, log)
        self.started.append(worker)
        return worker


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path / "workers")
    try:
        yield started
    finally:
        for worker in started.started:
            worker.stop()
