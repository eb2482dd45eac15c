"""Live progress of a long stage, for whoever watches it: the server's event stream, a terminal.

The ledger records what a stage decided; progress is what happens meanwhile (a gate started, a builder said
something) and is never the record of anything, so it is not written to the ledger. A watcher installs a
sink with :func:`observing` around the stage; code deep in a stage calls :func:`emit` and pays nothing when
nobody watches. The sink is a context variable: a worker thread a stage starts must take it along
(:func:`current`, then call it), as contexts do not flow into threads by themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

Sink = Callable[[str, Mapping[str, Any]], None]

_SINK: ContextVar[Sink | None] = ContextVar("kavi_progress_sink", default=None)


@contextmanager
def observing(sink: Sink) -> Iterator[None]:
    """Send :func:`emit` calls made in this context (and in threads given :func:`current`) to ``sink``."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def current() -> Sink | None:
    """The sink of this context, to hand to a thread the stage starts."""
    return _SINK.get()


def emit(kind: str, data: Mapping[str, Any], sink: Sink | None = None) -> None:
    """Tell the watcher, if any. A watcher that fails never fails the stage it watches."""
    target = sink if sink is not None else _SINK.get()
    if target is None:
        return
    with suppress(Exception):
        target(kind, data)
