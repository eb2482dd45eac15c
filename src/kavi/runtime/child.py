"""The child process of `run-skill`: receives the verified bytes on stdin, never reads the skill's path.

Protocol: one JSON request on stdin (name, sha256, source, filename, spec, input); one JSON line on stdout,
``{"ok": true, "output": ...}`` or ``{"ok": false, "phase": ..., "error_type": ..., "error": ...}``. Anything
the skill prints goes to stderr so it cannot forge the response.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

from kavi.errors import SideEffectViolation, SkillInputError
from kavi.runtime.loader import check_bytes, module_from_bytes


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Check, load and call the skill; return the response object (never raises for the skill's faults)."""
    from kavi.runtime.invoke import find_skill_class, invoke
    from kavi.spec import build_model, load_spec

    source = request["source"].encode("utf-8")
    try:
        check_bytes(source, request["sha256"], what=request["name"])
    except Exception as exc:
        return {"ok": False, "phase": "integrity", "error_type": type(exc).__name__, "error": str(exc)}
    spec = load_spec(request["spec"].encode("utf-8"))
    input_model = build_model(spec.input_schema, "SpecInput")
    output_model = build_model(spec.output_schema, "SpecOutput")
    phase = "load"
    try:
        if request.get("policy") is not None:
            from kavi.runtime.hook import install
            from kavi.runtime.relay import prepare

            # from here on, every effect is checked against the declared class (prepare: at FULL, a NETWORK
            # skill's hook also admits the egress relay, kavi.runtime.relay)
            install(prepare(request["policy"]))
        module = module_from_bytes(spec.name, source, filename=request["filename"])
        skill = find_skill_class(module)
        phase = "execute"
        output = invoke(skill, request["input"], input_model=input_model, output_model=output_model)
    except SkillInputError as exc:
        return {"ok": False, "phase": "input", "error_type": type(exc).__name__, "error": exc.message}
    except SideEffectViolation as exc:
        return {"ok": False, "phase": "side_effect", "error_type": type(exc).__name__, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "phase": phase, "error_type": type(exc).__name__, "error": str(exc)}
    return {"ok": True, "output": output}


def main() -> int:
    from kavi.sandbox.confine import apply_from_environment

    apply_from_environment()  # the kernel layers the executor configured, before any skill byte is read
    request = json.loads(sys.stdin.buffer.read())
    response_fd = os.dup(1)
    os.dup2(2, 1)  # the skill's own prints land on stderr
    with contextlib.redirect_stdout(sys.stderr):
        response = handle(request)
    with os.fdopen(response_fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(response, default=str) + "\n")
    return 0 if response.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
