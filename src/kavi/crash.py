"""Deliberate crash points for the kill -9 harness (stdlib only, a leaf module).

``KAVI_CRASH_AT=<label>:<n>`` makes the n-th call of ``crashpoint(label)`` in this process kill the process
with SIGKILL, exactly as a power cut or an OOM kill would: no ``finally``, no rollback, no flush.
``KAVI_CRASH_LOG=<file>`` appends every label reached to a file, so a harness can enumerate the points of a
command before crashing it at each one. With neither variable set a crash point is one ``is None`` test.
"""

from __future__ import annotations

import os
import signal

_AT = os.environ.get("KAVI_CRASH_AT")
_LOG = os.environ.get("KAVI_CRASH_LOG")
_ARMED = _AT is not None or _LOG is not None
_hits: dict[str, int] = {}


def crashpoint(label: str) -> None:
    """Die here if the harness asked for this label's current hit; free when no harness is listening."""
    if not _ARMED:
        return
    _hit(label)


def _hit(label: str) -> None:
    count = _hits[label] = _hits.get(label, 0) + 1
    if _LOG is not None:
        with open(_LOG, "a", encoding="utf-8") as handle:
            handle.write(f"{label}\n")
    if _AT is not None:
        wanted, _, nth = _AT.rpartition(":")
        if wanted == label and nth.isdigit() and int(nth) == count:
            os.kill(os.getpid(), signal.SIGKILL)
