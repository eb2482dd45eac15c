"""The replay builder: plays back a recorded build from a folder.

A recording is a folder laid out like a workspace (``skills/<name>.py``, ``skills/test_<name>.py``) and
optionally ``trace.jsonl`` (one trace event per line). A recording of several attempts has one folder per
attempt, ``attempt-1/``, ``attempt-2/``...; attempt N uses ``attempt-N/`` when it exists, else the last one.
Every recorded file is written into the sandbox, so the allowlist judges a replay like any other build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from kavi.builders.base import BuilderOptions, BuildOutcome, BuildPacket, BuildStatus, TraceEvent
from kavi.errors import BuildError

TRACE_FILE = "trace.jsonl"
OUTCOME_FILE = "outcome.json"


class ReplayOptions(BuilderOptions):
    source: Path | None = Field(default=None, description="The recording folder.")


class ReplayBuilder:
    name: ClassVar[str] = "replay"
    options_model: ClassVar[type[BuilderOptions]] = ReplayOptions

    def __init__(self, options: BuilderOptions | None = None) -> None:
        self.options = options if isinstance(options, ReplayOptions) else ReplayOptions()

    def available(self) -> tuple[bool, str]:
        if self.options.source is None:
            return False, "needs a recording: pass --replay-from DIR"
        if not self.options.source.is_dir():
            return False, f"recording {self.options.source} is not a folder"
        return True, f"replays {self.options.source}"

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome:
        ok, reason = self.available()
        if not ok:
            raise BuildError(f"replay builder: {reason}")
        assert self.options.source is not None
        recording = self._attempt_folder(self.options.source, packet.attempt)
        packet.write_into(sandbox)
        trace = [TraceEvent("replay", {"recording": str(recording), "attempt": packet.attempt})]
        for path in sorted(recording.rglob("*")):
            relative = path.relative_to(recording).as_posix()
            if relative in (TRACE_FILE, OUTCOME_FILE) or path.is_dir():
                continue
            target = sandbox / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                target.unlink(missing_ok=True)
                target.symlink_to(path.readlink())
            else:
                shutil.copyfile(path, target)
            trace.append(TraceEvent("tool_call", {"tool": "Write", "path": relative}))
        trace.extend(self._recorded_trace(recording))
        status, failure = self._recorded_outcome(recording)
        return BuildOutcome(status=status, reason=failure, trace=tuple(trace))

    @staticmethod
    def _attempt_folder(source: Path, attempt: int) -> Path:
        attempts = sorted(
            (p for p in source.glob("attempt-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()),
            key=lambda p: int(p.name.split("-", 1)[1]),
        )
        if not attempts:
            return source
        exact = source / f"attempt-{attempt}"
        return exact if exact.is_dir() else attempts[-1]

    @staticmethod
    def _recorded_trace(recording: Path) -> list[TraceEvent]:
        trace_file = recording / TRACE_FILE
        if not trace_file.is_file():
            return []
        events = []
        for line in trace_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                data = json.loads(line)
                events.append(TraceEvent(str(data.get("kind", "message")), dict(data.get("data", {}))))
        return events

    @staticmethod
    def _recorded_outcome(recording: Path) -> tuple[BuildStatus, str | None]:
        outcome_file = recording / OUTCOME_FILE
        if not outcome_file.is_file():
            return BuildStatus.SUCCEEDED, None
        data = json.loads(outcome_file.read_text(encoding="utf-8"))
        return BuildStatus(data.get("status", "SUCCEEDED")), data.get("reason")
