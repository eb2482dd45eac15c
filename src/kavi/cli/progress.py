"""Progress for people: a live display of which gate runs and which finished, on a terminal only.

The core reports through :class:`kavi.stages.verify.GateProgress` (and forge's step callback); this module
decides how it looks. On a pipe or under ``--json`` it shows nothing at all, so scripts read exactly what
they read before. Gates report from their own threads, hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kavi.cli.output import console, escape, isolation_label, styled
from kavi.stages.verify import UNOBSERVED, GateProgress

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from kavi.gates.base import GateResult


class LiveGates:
    """Rows of gates: a spinner while one runs, its status and time when it ends. ``heading`` says what is
    being judged (forge changes it per attempt)."""

    def __init__(self, out: Console, heading: str) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._finished: dict[str, GateResult] = {}
        self.heading = heading
        self._live: Live | None = None

    def __enter__(self) -> LiveGates:
        from rich.live import Live

        self._live = Live(self._render(), console=self._out, refresh_per_second=8, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def gate_started(self, gate: str) -> None:
        with self._lock:
            self._started[gate] = time.monotonic()
            self._refresh()

    def gate_finished(self, result: GateResult) -> None:
        with self._lock:
            self._finished[result.gate] = result
            self._refresh()

    def step(self, heading: str) -> None:
        """A new stage (forge's next attempt): a new heading, the gate rows start afresh."""
        with self._lock:
            self.heading = heading
            self._started.clear()
            self._finished.clear()
            self._refresh()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)  # every transition is drawn, however short

    def _render(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
        for name, began in self._started.items():
            done = self._finished.get(name)
            if done is None:
                table.add_row(Spinner("dots", style="cyan"), escape(name), f"running {time.monotonic() - began:.0f} s")
            else:
                seconds = f"{done.duration_s:.2f} s · {isolation_label(done.isolation, str(done.status))}"
                table.add_row(styled(str(done.status)), escape(name), f"{seconds} · {escape(done.summary)}")
        return Group(Spinner("dots", text=escape(self.heading), style="bold"), table)


@contextmanager
def gate_progress(heading: str, *, json_output: bool, out: Console | None = None) -> Iterator[GateProgress]:
    """A live gate display on a terminal; a silent observer on a pipe or under --json. Whatever else the
    command prints meanwhile must go through the same ``out``, above the live rows."""
    out = out or console()
    if json_output or not out.is_terminal:
        yield UNOBSERVED
        return
    with LiveGates(out, heading) as live:
        yield live
