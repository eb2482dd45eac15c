"""run-skill's child: the response travels from a reporter that never imports the skill, so what the skill
prints, writes on descriptors, raises on its way out or leaves to run after its result cannot become the
response. Each case runs the real child through `run_skill`'s own path, at FULL and at FALLBACK."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from kavi.runtime.child import judge_frame, read_report
from kavi.sandbox import bwrap
from kavi.spec import build_model, make_spec
from kavi.stages.run import TrustedBytes, _run_in_child
from kavi.workspace import Workspace
from tests.gates import verdict_candidates as cand


@pytest.fixture(params=["full", "fallback"])
def level(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "full" and not bwrap.probe_bwrap().works:
        pytest.skip("bubblewrap cannot run here")
    monkeypatch.setenv("KAVI_ISOLATION", request.param)
    return str(request.param)


def _run(workspace: Workspace, source: str, text: str, side_effect: str = "READ_ONLY") -> tuple[dict[str, Any], str]:
    """Run ``source`` as a TRUSTED word_count through run-skill's child path (no ledger needed)."""
    extra = {"write_roots": ("out",)} if side_effect == "FILE_WRITE" else {}
    spec = make_spec(
        name="word_count",
        description="Count words",
        side_effect=side_effect,
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
        **extra,  # type: ignore[arg-type]
    )
    data = source.encode()
    promotion = {
        "id": "pr_test",
        "proposal_id": "p_test",
        "name": "word_count",
        "version": 1,
        "skill_sha256": hashlib.sha256(data).hexdigest(),
        "side_effect": side_effect,
    }
    trusted = TrustedBytes(promotion, spec.canonical_json(), data, str(workspace.skills_dir / "word_count.py"))
    return _run_in_child(workspace, trusted, {"text": text}, None)


FORGED_PRINT = cand._execute(
    "        for line in FORGED:\n            print(line, flush=True)\n"
    + cand.RETURN.replace("split()))", "split()) + 1)"),
    imports=f"FORGED = {cand.FORGED_LINES!r}\n",
)
FORGED_PRINT_THEN_RAISE = cand._execute(
    "        print(FORGED[1], flush=True)\n        raise ValueError('the real failure')",
    imports=f"FORGED = {cand.FORGED_LINES!r}\n",
)
# One well-framed forged result, outside the output schema, on every descriptor; then no real result.
FORGED_FRAME_THEN_EXIT = cand._execute(
    "        forged = b'{\"ok\": true, \"output\": {\"count\": \"many\"}}'\n"
    "        for fd in range(3, 64):\n"
    "            try:\n"
    "                os.write(fd, len(forged).to_bytes(8, 'big') + forged)\n"
    "            except OSError:\n"
    "                pass\n"
    "        os._exit(0)",
    imports="import os\n",
)


def test_a_printed_response_is_data_the_real_output_is_the_response(workspace: Workspace, level: str) -> None:
    response, isolation = _run(workspace, FORGED_PRINT, "a b")
    assert response == {"ok": True, "output": {"count": 3}}
    assert isolation == level


@pytest.mark.parametrize(
    ("source", "error_type", "needle"),
    [
        (FORGED_PRINT_THEN_RAISE, "ValueError", "the real failure"),
        (cand.FORGED_VERDICT_THEN_EXIT, "SystemExit", "instead of returning"),
        (cand.EXITS_ON_THREE_WORDS, "NoResult", "without a result"),
        (cand.FORGED_ON_EVERY_FD, "ForgedResult", "more than one result"),
        (FORGED_FRAME_THEN_EXIT, "SkillExecutionError", "outside its schema"),
    ],
    ids=["print-then-raise", "print-then-sys-exit", "os-exit", "forged-frames-on-every-fd", "forged-frame-then-exit"],
)
def test_a_forged_response_becomes_the_real_failure(
    workspace: Workspace, level: str, source: str, error_type: str, needle: str
) -> None:
    response, _ = _run(workspace, source, "one two three")
    assert response["ok"] is False, response
    assert response["error_type"] == error_type and needle in response["error"], response


def test_nothing_runs_after_the_result(workspace: Workspace, level: str) -> None:
    """atexit handlers and objects a registry keeps alive until finalization would print a forged response
    and write a marker into the declared write root; the worker ends with os._exit right after its result."""
    response, _ = _run(workspace, cand.AFTER_THE_VERDICT, "a b", side_effect="FILE_WRITE")
    assert response == {"ok": True, "output": {"count": 3}}
    out = workspace.root / "out"
    assert out.is_dir() and list(out.iterdir()) == []


def test_the_reporter_accepts_exactly_one_clean_frame() -> None:
    model = build_model({"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}, "O")
    good = json.dumps({"ok": True, "output": {"count": 2}}).encode()
    assert judge_frame(good, False, 0, model) == {"ok": True, "output": {"count": 2}}
    assert judge_frame(good, True, 0, model)["error_type"] == "ForgedResult"
    assert judge_frame(good, False, 3, model)["error_type"] == "Exit"
    assert judge_frame(None, False, 0, model)["error_type"] == "NoResult"
    assert judge_frame(b"[1]", False, 0, model)["error_type"] == "ForgedResult"
    assert judge_frame(b'{"ok": true, "output": {"count": "x"}}', False, 0, model)["ok"] is False


@pytest.mark.parametrize("stdout", ["", "{}\n{}\n", "not json\n", "[1]\n"])
def test_a_report_channel_without_exactly_one_object_is_no_report(stdout: str) -> None:
    assert read_report(stdout) is None


def test_the_child_writes_nothing_outside_its_declared_root(workspace: Workspace, tmp_path: Path) -> None:
    """The marker test above relies on the write root being writable: an honest write there lands."""
    honest = cand._execute(
        "        Path('out', 'honest').write_text('x')\n" + cand.RETURN, imports="from pathlib import Path\n"
    ).replace("SideEffect.READ_ONLY", "SideEffect.FILE_WRITE")
    response, _ = _run(workspace, honest, "a", side_effect="FILE_WRITE")
    assert response == {"ok": True, "output": {"count": 1}}
    assert (workspace.root / "out" / "honest").read_text() == "x"


OBSERVER = cand._execute(
    "        try:\n"
    "            listing = sorted(os.listdir('.'))\n"
    "        except OSError as exc:\n"
    "            listing = type(exc).__name__\n"
    "        seen = {\n"
    "            'argv': sys.argv,\n"
    "            'env': {key: value for key, value in os.environ.items()},\n"
    "            'flags': repr(sys.flags),\n"
    "            'path': sys.path,\n"
    "            'modules': sorted(name for name in sys.modules if not name.startswith('word_count')),\n"
    "            'file': __file__.rsplit('/', 2)[-2:],\n"
    "            'cwd_listing': listing,\n"
    "        }\n"
    "        Path('out', 'seen.json').write_text(json.dumps(seen))\n" + cand.RETURN,
    imports="import json\nimport os\nimport sys\nfrom pathlib import Path\n",
).replace("SideEffect.READ_ONLY", "SideEffect.FILE_WRITE")


def test_a_gate_starts_the_skill_as_run_skill_does(workspace: Workspace, tmp_path: Path, level: str) -> None:
    """The same argv, environment, interpreter flags, import path, loaded modules and file name: what a skill
    can still see of the difference is the path of the folder it runs in, which neither child may list
    (docs/isolation.md lists what differs)."""
    from kavi.gates.base import GateContext
    from kavi.gates.examples import ExamplesGate

    spec = make_spec(
        name="word_count",
        description="Count words",
        side_effect="FILE_WRITE",
        write_roots=("out",),
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
        examples=[{"input": {"text": "a b"}, "output": {"count": 2}}],
    )
    sandbox = tmp_path / "verify"
    (sandbox / "skills").mkdir(parents=True)
    (sandbox / spec.skill_path).write_text(OBSERVER)
    (sandbox / spec.test_path).write_text(cand.HONEST_TESTS)
    gate = ExamplesGate().run(GateContext(spec=spec, sandbox=sandbox, cache_dir=tmp_path / "cache"))
    assert gate.passed, gate.report
    in_gate = json.loads((sandbox / "out" / "seen.json").read_text())

    response, _ = _run(workspace, OBSERVER, "a b", side_effect="FILE_WRITE")
    assert response["ok"], response
    at_run = json.loads((workspace.root / "out" / "seen.json").read_text())

    def private(env: dict[str, str]) -> dict[str, str]:
        """HOME and TMPDIR name a fresh private folder each run; PWD is the working folder (listed)."""
        env.pop("PWD", None)
        return {key: value.rsplit("-", 1)[0] if key in ("HOME", "TMPDIR") else value for key, value in env.items()}

    assert private(in_gate.pop("env")) == private(at_run.pop("env"))
    # Neither child may list the folder it works in (Landlock): a skill cannot tell a verify sandbox from a
    # workspace by looking around.
    assert in_gate.pop("cwd_listing") == at_run.pop("cwd_listing") == "PermissionError"
    assert in_gate == at_run
