"""The pytest plugin kavi loads (``-p kavi.runtime.pytest_report``) into the pytest gate's child.

It reports, as each thing happens, on the child's original stdout (which it takes for itself at import,
pointing fd 1 at stderr, so pytest's own terminal output lands there as data): the plugins present when
the session starts, the collected test ids, a record from inside every test function's own call (did the
function itself return or raise), pytest's report of every phase, and the end of the session.

The parent (:mod:`kavi.gates.tests`) decides from these records, not from pytest's exit status or summary
line, which test code can change (``session.testsfailed = 0``; a plugin whose ``pytest_pyfunc_call``
returns True so later tests never run). This plugin lives in the same interpreter as the tests, so a test
that goes after the plugin itself can still lie; that is why the builder's tests count as the builder's
evidence and kavi's own evidence is the examples gate, which runs where no test code does.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator
from typing import Any

import pytest

CHANNEL_ENV = "KAVI_PYTEST_REPORT"
_STATE: dict[str, Any] = {}


def _take_stdout() -> None:
    """Keep the original stdout as the channel and point fd 1 at stderr, so pytest's own output lands there.
    At import (``-p`` imports the plugin before pytest's output capture saves fd 1), and only in the gate's
    child, which sets CHANNEL_ENV: importing this module anywhere else changes nothing."""
    if os.environ.get(CHANNEL_ENV) != "stdout" or "channel" in _STATE:
        return
    sys.stdout.flush()
    _STATE["channel"] = os.dup(1)
    os.set_inheritable(_STATE["channel"], False)
    os.dup2(2, 1)


_take_stdout()


def _send(record: dict[str, Any]) -> None:
    if "channel" not in _STATE:
        return
    data = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    view = memoryview(data)
    while view:
        view = view[os.write(_STATE["channel"], view) :]


def _plugin_names(config: pytest.Config) -> frozenset[str]:
    return frozenset(name for name, _ in config.pluginmanager.list_name_plugin())


@pytest.hookimpl(trylast=True)  # after pytest's own session-start registrations (the fixture manager)
def pytest_sessionstart(session: pytest.Session) -> None:
    names = _plugin_names(session.config)
    _STATE["plugins"] = names
    _send({"event": "start", "plugins": sorted(names)})


def pytest_collection_finish(session: pytest.Session) -> None:
    _send({"event": "collected", "items": [item.nodeid for item in session.items]})


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, None]:
    """Wrap the test function itself: the record says whether the function ran and how it ended, whatever
    any ``pytest_pyfunc_call`` implementation claims."""
    original = pyfuncitem.obj
    nodeid = pyfuncitem.nodeid

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            value = original(*args, **kwargs)
        except BaseException as exc:
            _send({"event": "call", "nodeid": nodeid, "ran": "raised", "error": type(exc).__name__})
            raise
        _send({"event": "call", "nodeid": nodeid, "ran": "returned"})
        return value

    pyfuncitem.obj = run
    try:
        yield
    finally:
        pyfuncitem.obj = original


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _send({"event": "collect_error", "nodeid": report.nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record: dict[str, Any] = {"event": "report", "nodeid": report.nodeid, "when": report.when}
    record["outcome"] = report.outcome
    _send(record)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    added = sorted(_plugin_names(session.config) - _STATE.get("plugins", frozenset()))
    _send({"event": "finish", "exitstatus": int(exitstatus), "plugins_added": added})
