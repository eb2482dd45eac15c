"""Bad input never crashes kavi: random command lines, JSON schemas and skill inputs end with exit 0, 1 or
2 and a one-line message, never a traceback (exit 3), and a refused command never changes the ledger."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kavi.workspace import Workspace
from tests.support import CliResult, run_cli

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)

# Commands that only touch the workspace (init, demo, keygen and attest write to paths they are given).
COMMANDS = [
    "propose-skill", "build-skill", "verify-skill", "promote-skill", "list-skills", "show", "revoke", "reject",
    "status", "run-skill", "audit", "verify-lock", "verify-attestation",
]  # fmt: skip
OPTIONS = [
    "--json", "--name", "--desc", "--side-effect", "--io-schema-json", "--examples-json", "--version", "--all",
    "--quick", "--input-file", "--resume", "--from", "--builder", "--approver", "--reason",
    "--key", "--write-root", "--allow-host", "--secret", "--allow-exec", "READ_ONLY", "word_count", "-1", "0",
    "99999999999999999999", "{}", "[]", "{", "null", ".", "/", "..", "--", "-", "p_", "\x00", "é",
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _ledger_state(workspace: Workspace) -> tuple[int, str]:
    conn = sqlite3.connect(workspace.root / ".kavi" / "ledger.db")
    try:
        row = conn.execute("SELECT COUNT(*), COALESCE(MAX(hash), '') FROM events").fetchone()
        return int(row[0]), str(row[1])
    finally:
        conn.close()


def _crash_log(result: CliResult) -> str:
    """The traceback behind "kavi hit a bug", so that a failure here says what broke."""
    found = re.search(r"details are in (\S+) \(please report it\)", result.stderr + result.stdout)
    return Path(found.group(1)).read_text(errors="replace")[-3000:] if found and Path(found.group(1)).is_file() else ""


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def _check(workspace: Workspace, args: list[str], *, may_record: bool = False) -> int:
    before = _ledger_state(workspace)
    result = run_cli(*args)
    assert result.code in (0, 1, 2), (args, result.code, result.stdout[-500:], result.stderr[-500:], _crash_log(result))
    assert "Traceback" not in result.stdout + result.stderr, args
    if result.code != 0:
        messages = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        json_errors = [line for line in result.stdout.splitlines() if line.startswith('{"ok": false')]
        assert messages or json_errors or "Usage:" in result.stderr or result.stdout.strip(), (args, result)
        assert len(messages) <= 1, (args, result.stderr)
        if not may_record:
            assert _ledger_state(workspace) == before, (args, "a refused command changed the ledger")
    return result.code


@FUZZ
@given(
    st.sampled_from(COMMANDS),
    st.lists(st.one_of(st.sampled_from(OPTIONS), st.text(max_size=12)), max_size=6),
)
def test_random_command_lines_never_crash(trusted: Workspace, command: str, rest: list[str]) -> None:
    args = [command, *[a.replace("\x00", "") if a.startswith("--") else a for a in rest]]
    if command in ("verify-skill", "build-skill") and "word_count" in args:
        return  # a real verification or build takes seconds; the flows are covered elsewhere
    _check(trusted, args, may_record=command == "run-skill")


@FUZZ
@given(json_values, json_values, st.sampled_from(["READ_ONLY", "FILE_WRITE", "NETWORK", "x", ""]))
def test_random_schemas_and_examples_are_refused_cleanly(
    trusted: Workspace, schema: Any, examples: Any, effect: str
) -> None:
    args = [
        "propose-skill", "--name", "fuzzed", "--desc", "d", "--side-effect", effect,
        "--io-schema-json", json.dumps(schema), "--examples-json", json.dumps(examples), "--json",
    ]  # fmt: skip
    if _check(trusted, args) == 0:
        assert run_cli("reject", "fuzzed").code == 0


# Each input runs in a real isolated child (`--in-process` would install the audit hook in this test process
# for good), so fewer examples than the argument fuzzers.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4) | json_values)
def test_random_skill_inputs_are_validated_not_crashed(trusted: Workspace, payload: Any) -> None:
    before = _ledger_state(trusted)
    code = _check(trusted, ["run-skill", "word_count", "--json", json.dumps(payload)], may_record=True)
    after = _ledger_state(trusted)
    finite = _finite(payload)  # JSON has no infinity: such an input is refused like malformed JSON
    if not isinstance(payload, dict) or not finite:
        assert code == 2 and after == before  # refused before anything ran: nothing recorded
    else:
        assert after[0] == before[0] + 1  # the attempt is recorded once, as an execution (ok or not)


def test_an_input_file_that_is_a_folder_is_a_usage_error(trusted: Workspace) -> None:
    result = run_cli("run-skill", "word_count", "--input-file", str(trusted.root))
    assert result.code == 2
