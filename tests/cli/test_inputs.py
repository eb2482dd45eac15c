"""Input and configuration edge cases (issue 11 §6): every malformed input is one line and exit 2, every
unknown kavi.toml key fails every command, and ids too short or ambiguous say so."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from kavi.ledger.ids import utc_now
from kavi.ledger.models import Build
from kavi.stages.common import Forge
from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, run_cli

DEEP = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"text": ' + "[" * 50_000 + "]" * 50_000 + "}"
SCHEMA = '{"input": {"text": "str"}, "output": {"count": "int"}}'


def _propose(*args: str) -> tuple[int, str]:
    base = ["--name", "word_count", "--desc", "Count words", "--side-effect", "READ_ONLY"]
    result = run_cli("propose-skill", *base, *args)
    return result.code, result.stderr


def _one_line_usage_error(code: int, stderr: str) -> str:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Recursion" not in stderr and "Traceback" not in stderr and "bug" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("--io-schema-json", DEEP, "--examples-json", "[]"),
        ("--io-schema-json", SCHEMA, "--examples-json", DEEP),
        ("--io-schema-json", SCHEMA, "--examples-json", f'[{{"input": {DEEP_OBJECT}, "output": {{"count": 1}}}}]'),
        ("--io-schema-json", '{"input": {"text": "str"}, "output": {"count": "int"', "--examples-json", "[]"),
    ],
    ids=["deep-schema", "deep-examples", "deep-example-input", "truncated"],
)
def test_every_propose_json_input_is_one_line_and_exit_2(workspace: Workspace, args: tuple[str, ...]) -> None:
    _one_line_usage_error(*_propose(*args))


def test_every_run_input_is_one_line_and_exit_2(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep_file = tmp_path / "deep.json"
    deep_file.write_text(DEEP_OBJECT)
    _one_line_usage_error(*_run("run-skill", "word_count", "--json", DEEP_OBJECT))
    _one_line_usage_error(*_run("run-skill", "word_count", "--input-file", str(deep_file)))
    _one_line_usage_error(*_run("run-skill", "word_count", "--json", '{"x": NaN}'))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DEEP_OBJECT.encode())))
    line = _one_line_usage_error(*_run("run-skill", "word_count", "--input-file", "-"))
    assert "nested too deeply" in line


def _run(*args: str) -> tuple[int, str]:
    result = run_cli(*args)
    return result.code, result.stderr


@pytest.mark.parametrize(
    ("examples", "expected"),
    [
        (
            '[{"input": {"text": "a"}, "output": {"count": 1}}, {"input": {"text": "a"}, "output": {"count": 2}}]',
            "same input but expect different results",
        ),
        ('[{"input": {"text": "a"}, "error": "NotAnError"}]', "'NotAnError' is not an exception type"),
        ('[{"input": {"text": "a"}, "output": {"count": NaN}}]', "NaN"),
        ("[1]", "example 0 must be a JSON object"),
        ('[{"input": {"text": "a"}}]', "exactly one of 'output' or 'error'"),
        ('[{"input": {"text": "a"}, "output": {"count": 1}, "extra": 1}]', "extra: is not a field kavi knows"),
    ],
    ids=["contradicting", "not-an-exception", "nan", "not-an-object", "no-outcome", "unknown-field"],
)
def test_bad_examples_are_refused_in_kavis_words(workspace: Workspace, examples: str, expected: str) -> None:
    line = _one_line_usage_error(*_propose("--io-schema-json", SCHEMA, "--examples-json", examples))
    assert expected in line, line
    for pydantic_words in ("Input should be", "instance of", "Value error", "Extra inputs"):
        assert pydantic_words not in line, line


def test_good_error_examples_are_still_accepted(workspace: Workspace) -> None:
    examples = (
        '[{"input": {"text": "a"}, "error": "ValueError"}, {"input": {"text": "b"}, "error": "must not be empty"},'
        ' {"input": {"text": "c"}, "error": "SkillInputError"}, {"input": {"text": "a"}, "error": "ValueError"}]'
    )
    code, stderr = _propose("--io-schema-json", SCHEMA, "--examples-json", examples)
    assert code == 0, stderr


def test_nan_is_refused_by_the_core_too(workspace: Workspace) -> None:
    from kavi.errors import SpecError
    from kavi.spec import make_spec

    with pytest.raises(SpecError, match="finite"):
        make_spec(
            name="halve",
            description="Halve",
            side_effect="READ_ONLY",
            io_schema={"input": {"x": "float"}, "output": {"y": "float"}},
            examples=[{"input": {"x": float("inf")}, "output": {"y": 1.0}}],
        )


def test_short_and_ambiguous_ids_say_so(workspace: Workspace) -> None:
    proposed = run_cli("propose-skill", *WORD_COUNT_ARGS, "--json").json()
    with Forge.opened(workspace) as forge, forge.ledger.transaction() as session:
        for suffix in ("1", "2"):
            session.add(
                Build(
                    id=f"b_abcd{suffix}",
                    proposal_id=proposed["proposal_id"],
                    attempt=int(suffix),
                    builder="manual",
                    status="FAILED",
                    created_at=utc_now(),
                )
            )
    assert "too short" in run_cli("show", "p_").stderr
    assert "too short" in run_cli("show", "p_1").stderr
    assert run_cli("show", proposed["proposal_id"][:5]).code == 0
    assert "too short" in run_cli("trace", "b_a").stderr
    ambiguous = run_cli("trace", "b_abcd")
    assert ambiguous.code == 2 and "ambiguous" in ambiguous.stderr, ambiguous.stderr
    assert "no build" in run_cli("trace", "b_ffff").stderr


@pytest.mark.parametrize(
    ("addition", "expected"),
    [("\n[bogus]\nx = 1\n", "unknown table [bogus]"), ("\n[verify]\ntimout_s = 5\n", "unknown key 'timout_s'")],
    ids=["table", "key"],
)
def test_unknown_settings_fail_every_command(workspace: Workspace, addition: str, expected: str) -> None:
    config = workspace.root / "kavi.toml"
    text = config.read_text()
    if "[verify]" in addition:
        text = text.replace("[verify]\n", "[verify]\ntimout_s = 5\n")
    else:
        text += addition
    config.write_text(text)
    for command in (
        ("status",),
        ("list-skills",),
        ("show", "word_count"),
        ("run-skill", "word_count"),
        ("propose-skill", *WORD_COUNT_ARGS),
        ("verify-lock",),
        ("audit",),
        ("builders",),
        ("trace", "b_abcd"),
    ):
        result = run_cli(*command)
        assert result.code == 1, (command, result.stdout, result.stderr)
        assert expected in result.stderr, (command, result.stderr)
