"""What people read: no literal markup, no Python reprs, no mid-word wrapping, aligned columns, a readable trace."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kavi.cli.transcript import transcript
from tests.support import WORD_COUNT_ARGS, CliResult, recording, run_cli

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, CliResult]]:
    """One demo workspace for the whole module (the demo verifies two skills: seconds, not milliseconds)."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("KAVI_TESTING", "1")
        result = run_cli("demo", "--path", str(root / "ws"))
    assert result.code == 0, result.stderr
    yield root / "ws", result


@pytest.fixture
def demo_ws(demo: tuple[Path, CliResult], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KAVI_WORKSPACE", str(demo[0]))
    return demo[0]


def test_the_demo_gate_table_shows_the_isolation_the_ledger_records(demo: tuple[Path, CliResult]) -> None:
    lines = [line.split() for line in demo[1].stdout.splitlines()]
    # a gate's row, not a wrapped summary line that happens to start with a gate's name
    rows = [row for row in lines if row[:1] in (["pytest"], ["examples"]) and row[1:2] in (["pass"], ["fail"])]
    assert rows and all(row[3] == "full" for row in rows), demo[1].stdout
    ruff = next(line.split() for line in demo[1].stdout.splitlines() if line.startswith("ruff "))
    assert ruff[3] == "static"  # ruff reads the candidate and never runs it


def test_show_renders_executions_as_words_not_a_dict(demo_ws: Path) -> None:
    shown = run_cli("show", "word_count")
    line = next(line for line in shown.stdout.splitlines() if "executions" in line)
    assert line.strip() == "executions: 1 (1 under full isolation)"


def test_attest_has_json(demo_ws: Path) -> None:
    result = run_cli("attest", "word_count", "--json")
    data = result.json()
    assert result.code == 0 and data["ok"] is True and data["signed"] is False and data["path"] is None
    assert data["attestation"]["_type"] == "https://in-toto.io/Statement/v1"


def test_doctor_wraps_at_words_and_counts_in_words(demo_ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kavi.integrity import doctor
    from kavi.workspace import find_workspace

    lock = doctor._lock_check(find_workspace(demo_ws))
    assert lock.detail == "2 entries agree with the files and the ledger"
    long_fix = "install Claude Code (`npm install @anthropic-ai/claude-code`) or point the `binary` option at it " * 2
    checks = [
        lock,
        doctor.Check("builder claude-code", doctor.WARN, "no `claude` executable found: " + long_fix, "configure it"),
        doctor.Check("isolation", doctor.OK, "full: bubblewrap 0.8.0 + rlimits (RLIMIT_CPU, RLIMIT_AS) + audit hook"),
    ]
    monkeypatch.setattr(doctor, "run_doctor", lambda explicit=None: checks)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich renders as for a terminal
    monkeypatch.setenv("COLUMNS", "100")
    text = ANSI.sub("", run_cli("doctor").stdout)
    assert all(len(line) <= 100 for line in text.splitlines()), text
    assert len(text.splitlines()) > len(checks)  # the long line did wrap
    words = set(text.split())
    for check in checks:
        fix = f" → {check.fix}" if check.status != doctor.OK else ""
        for word in f"{check.name} {check.detail}{fix}".split():
            assert word in words, f"{word!r} was cut by the wrapping:\n{text}"


def test_builders_columns_line_up(demo_ws: Path) -> None:
    rows = run_cli("builders", "--json").json()["builders"]
    lines = run_cli("builders").stdout.splitlines()
    starts = {line.index(row["detail"]) for row, line in zip(rows, lines, strict=True)}
    names = {line.index(row["name"]) for row, line in zip(rows, lines, strict=True)}
    assert len(starts) == 1 and len(names) == 1, lines


def test_trace_is_a_transcript_with_the_paths_written(demo_ws: Path) -> None:
    build = run_cli("show", "word_count", "--json").json()["builds"][0]["id"]
    text = run_cli("trace", build).stdout
    assert "→ Write skills/word_count.py" in text and "→ Write skills/test_word_count.py" in text
    assert "{" not in text  # no raw JSON events
    assert "files: skills/test_word_count.py, skills/word_count.py" in text


def test_build_skill_help_names_the_files() -> None:
    text = " ".join(run_cli("build-skill", "--help").stdout.split())
    assert "skills/NAME.py and skills/test_NAME.py" in text, text


def test_a_failing_gate_report_prints_its_header_without_literal_markup(workspace: object, tmp_path: Path) -> None:
    failing = recording("word_count", tmp_path)
    (failing / "skills" / "test_word_count.py").write_text(
        "from word_count import WordCount, WordCountInput\n\n\n"
        "def test_wrong() -> None:\n"
        "    assert WordCount().execute(WordCountInput(text='ab')).count == 2\n"
    )
    assert run_cli("propose-skill", *WORD_COUNT_ARGS).code == 0
    assert run_cli("build-skill", "word_count", "--replay-from", str(failing)).code == 0
    result = run_cli("verify-skill", "word_count")
    assert result.code == 1
    assert "pytest report:" in result.stdout and "[bold]" not in result.stdout
    assert "\x1b" not in result.stdout and "running" not in result.stdout  # a pipe gets no live display


def test_transcript_reads_turns_tool_calls_results_and_denials() -> None:
    events = [
        {"ts": "2026-01-01T10:00:00.000", "kind": "trace.prompt", "data": {"text": "Write the skill", "chars": 15}},
        {"ts": "2026-01-01T10:00:01.000", "kind": "trace.assistant_message", "data": {"text": "I will write it."}},
        {
            "ts": "2026-01-01T10:00:01.000",
            "kind": "trace.tool_call",
            "data": {"id": "c1", "name": "Write", "input": {"file_path": "skills/a.py", "content": "x" * 5000}},
        },
        {"ts": "2026-01-01T10:00:02.000", "kind": "trace.tool_result", "data": {"is_error": False, "content": "ok"}},
        {
            "ts": "2026-01-01T10:00:03.000",
            "kind": "trace.tool_call",
            "data": {"id": "c2", "name": "write_file", "arguments": json.dumps({"path": "kavi.toml"})},
        },
        {
            "ts": "2026-01-01T10:00:03.000",
            "kind": "trace.tool_result",
            "data": {"is_error": True, "content": "denied: kavi.toml is outside the allowlist"},
        },
        {
            "ts": "2026-01-01T10:00:04.000",
            "kind": "trace.permission_denied",
            "data": {"tool_name": "Bash", "decision_reason": "not allowed"},
        },
        {"ts": "2026-01-01T10:00:05.000", "kind": "trace.usage", "data": {"input_tokens": 10, "output_tokens": 5}},
    ]
    text = "\n".join(transcript(events))
    assert "── turn 1" in text and "── turn 2" in text
    assert "→ Write skills/a.py" in text and "→ write_file kavi.toml" in text
    assert "← error" in text and "outside the allowlist" in text
    assert "✗ denied Bash: not allowed" in text
    assert "usage: 10 tokens in, 5 out" in text
    assert "x" * 200 not in text  # a written file's content is not dumped
