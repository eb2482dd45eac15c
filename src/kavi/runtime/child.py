"""The child process that runs a skill: `run-skill` uses it, and so do the examples and invariants gates,
with the same argv, environment and request shape, so a skill cannot tell a gate from a real run by how
it was started.

Protocol: one JSON request on stdin (name, sha256, source, filename, spec, input, policy; ``"introspect":
true`` asks for the skill's declared facts instead of a call); one JSON line on stdout, the report.

Why two processes. Nothing that runs in the candidate's interpreter can be a judge: whatever that process
can write, the candidate can write too. So the process the executor starts (the *reporter*) never imports
the candidate. It reads the request, forks a *worker*, and only the worker installs the audit hook and
executes the skill's bytes. Before the candidate's first byte runs, the worker points its stdout at stderr
(the skill's prints are captured apart, as data) and keeps no handle on the report channel (the reporter's
stdout); it sends its raw result to the reporter over a pipe of its own and ends with ``os._exit`` straight
away, so no interpreter finalization runs after the reporting (no ``__del__``, atexit or registry
finalizer, which could print a forged verdict or write files after the hooks are gone).

The reporter accepts exactly one result frame, refuses a second one, treats a worker that ended in any
other way (``sys.exit``, ``os._exit``, a signal) as a failure, checks an output against the spec's output
model itself, and is made non-dumpable so a same-user worker cannot open its descriptors through
``/proc``. What the worker sends is still the candidate's testimony (it could have forged the frame): the
parent judges it, comparing outputs with the frozen expectations in the parent process (the examples gate)
and models' JSON Schemas with the spec's (the invariants gate).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from typing import Any

from kavi.errors import SideEffectViolation, SkillInputError
from kavi.runtime.loader import check_bytes, module_from_bytes

CHILD_MODULE = "kavi.runtime.child"
MAX_RESULT_BYTES = 64 * 1024 * 1024
_LENGTH_BYTES = 8
# Exceptions that are not `Exception` (SystemExit, KeyboardInterrupt, GeneratorExit...) end the process in
# normal Python; from a skill they are a failure, never an expected error.
EXIT_PHASE = "exit"


def child_argv() -> list[str]:
    """The one argv every skill child is started with (run-skill and the gates alike)."""
    return [sys.executable, "-I", "-B", "-m", CHILD_MODULE]


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Check, load and call the skill; return the response object (never raises for the skill's faults,
    except KeyboardInterrupt, which an in-process caller must still be able to send)."""
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
        if request.get("introspect"):
            from kavi.runtime.probe import introspection_facts

            return {"ok": True, "facts": introspection_facts(skill)}
        phase = "execute"
        output = invoke(skill, request["input"], input_model=input_model, output_model=output_model)
    except SkillInputError as exc:
        return {"ok": False, "phase": "input", "error_type": type(exc).__name__, "error": exc.message}
    except SideEffectViolation as exc:
        return {"ok": False, "phase": "side_effect", "error_type": type(exc).__name__, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "phase": phase, "error_type": type(exc).__name__, "error": str(exc)}
    except (SystemExit, GeneratorExit) as exc:
        return _ended(exc)
    return {"ok": True, "output": output}


def _ended(exc: BaseException) -> dict[str, Any]:
    return {
        "ok": False,
        "phase": EXIT_PHASE,
        "error_type": type(exc).__name__,
        "error": f"the skill raised {type(exc).__name__} instead of returning",
    }


# --- the reporter (never imports the candidate) ---------------------------------------------------------


def main() -> None:
    from kavi.sandbox.confine import apply_from_environment

    apply_from_environment()  # the kernel layers the executor configured, before any skill byte is read
    request = json.loads(sys.stdin.buffer.read())
    _not_dumpable()
    if isinstance(request.get("inputs"), list):  # a gate's examples: one fresh worker per input, in order
        model = output_model_of(request)  # built once, not once per example
        report: dict[str, Any] = {
            "ok": True,
            "reports": [supervise({**request, "input": item}, model) for item in request["inputs"]],
        }
    else:
        report = supervise(request)
    data = (json.dumps(report, default=str) + "\n").encode("utf-8")
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]
    os._exit(0)


def output_model_of(request: dict[str, Any]) -> Any:
    """The spec's output model, built in the reporter (which never imports the skill)."""
    from kavi.spec import build_model, load_spec

    return build_model(load_spec(request["spec"].encode("utf-8")).output_schema, "SpecOutput")


def supervise(request: dict[str, Any], output_model: Any = None) -> dict[str, Any]:
    """Fork the worker, collect its one result frame, and check it: the reporter's half."""
    if output_model is None:
        output_model = output_model_of(request)
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        os.close(read_end)
        _work(request, write_end)
    os.close(write_end)
    try:
        frame = _read_frame(read_end)
        if frame is None:  # it ended, or sent more than any result may be: stop it either way
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        status, extra = _wait_draining(read_end, pid)
    finally:
        os.close(read_end)
    return judge_frame(frame, extra, os.waitstatus_to_exitcode(status), output_model)


def judge_frame(frame: bytes | None, extra: bool, exit_code: int, output_model: Any) -> dict[str, Any]:
    """The reporter's rules: exactly one well-formed frame, a clean exit, an output inside the schema."""
    if frame is None:
        return _failure(EXIT_PHASE, "NoResult", f"the skill process ended (exit status {exit_code}) without a result")
    if extra:
        return _failure(EXIT_PHASE, "ForgedResult", "the skill process sent more than one result")
    if exit_code != 0:
        return _failure(EXIT_PHASE, "Exit", f"the skill process exited with status {exit_code} after its result")
    try:
        response = json.loads(frame)
    except ValueError:
        return _failure(EXIT_PHASE, "ForgedResult", "the skill process sent a malformed result")
    if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
        return _failure(EXIT_PHASE, "ForgedResult", "the skill process sent a malformed result")
    if not response["ok"]:
        return {
            "ok": False,
            "phase": str(response.get("phase", "execute")),
            "error_type": str(response.get("error_type", "Error")),
            "error": str(response.get("error", "")),
        }
    if "facts" in response:
        return {"ok": True, "facts": response["facts"]}
    output = response.get("output")
    if not isinstance(output, dict):
        return _failure("execute", "SkillExecutionError", "the skill returned no output object")
    try:
        output_model.model_validate(output)
    except Exception as exc:  # a pydantic ValidationError: the output is outside the spec
        return _failure("execute", "SkillExecutionError", f"the skill returned output outside its schema: {exc}")
    return {"ok": True, "output": output}


def _failure(phase: str, error_type: str, error: str) -> dict[str, Any]:
    return {"ok": False, "phase": phase, "error_type": error_type, "error": error}


def _read_frame(fd: int) -> bytes | None:
    """One length-prefixed frame from the worker (None: it ended first, or the frame is too large)."""
    header = _read_exactly(fd, _LENGTH_BYTES)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length > MAX_RESULT_BYTES:
        return None
    return _read_exactly(fd, length)


def _wait_draining(fd: int, pid: int) -> tuple[int, bool]:
    """Wait for the worker, reading (and counting) whatever it writes after its frame, so a worker that
    writes more than the pipe holds cannot block: (wait status, whether anything followed the frame)."""
    os.set_blocking(fd, False)
    extra = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        found, closed = _drain(fd)
        extra = extra or found
        if done:
            return status, extra
        if closed:  # nothing more can come: just wait
            return os.waitpid(pid, 0)[1], extra
        select.select([fd], [], [], 0.05)


def _drain(fd: int) -> tuple[bool, bool]:
    """(whether anything was read, whether the pipe is closed)."""
    found = False
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return found, False  # a descendant may still hold the pipe open; what counts is what was written
        if not chunk:
            return found, True
        found = True


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, min(size - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _not_dumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)``: /proc/<reporter>/fd becomes root's, so a same-user worker without
    capabilities cannot open the report channel through it (nor ptrace the reporter)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)


# --- the worker (runs the candidate; its only way out is one frame on its own pipe) ---------------------


def _work(request: dict[str, Any], channel: int) -> None:
    """Run the skill and send the response frame; never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # the skill's own prints land on stderr, captured apart from the report
        with contextlib.redirect_stdout(sys.stderr):
            response = handle(request)
    except BaseException as exc:  # KeyboardInterrupt and anything else that left handle()
        response = _ended(exc)
    try:
        body = json.dumps(response, default=str).encode("utf-8")
    except BaseException as exc:
        body = json.dumps(_failure("execute", "SkillExecutionError", f"unserialisable result: {exc!r}")).encode()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    data = memoryview(len(body).to_bytes(_LENGTH_BYTES, "big") + body)
    try:
        while data:
            data = data[os.write(channel, data) :]
    finally:
        os._exit(0)


def read_report(stdout: str) -> dict[str, Any] | None:
    """The reporter's one report line, or None when there is not exactly one JSON object."""
    lines = stdout.splitlines()
    if len(lines) != 1:
        return None
    try:
        report = json.loads(lines[0])
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


if __name__ == "__main__":
    main()
