"""A launcher that installs the side-effect audit hook, then runs a module or a script.

    python -B -m kavi.runtime.guard --policy-json '{...}' -m pytest -q tests
    python -B -m kavi.runtime.guard --policy-json '{...}' --script runner.py ARG...

(:func:`guarded_python_argv` builds the same call with ``-c``, which skips importing runpy.)

The hook is in force before the first byte of the target is read, so nothing the target imports or
runs escapes it. Start-up cost matters (`run-skill` has 0.3 s for the whole process), so this module
parses its own arguments and imports only the standard library and kavi's stdlib-only leaves.
"""

# string paths on purpose: pathlib costs start-up time in every child.
# ruff: noqa: PTH100, PTH109, PTH120

from __future__ import annotations

import json
import os
import sys

from kavi.runtime.hook import install
from kavi.sandbox.confine import apply_from_environment

RELAY_ENV = "KAVI_EGRESS_RELAY"  # kavi.runtime.relay.RELAY_ENV, without importing it for every child

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from kavi.runtime.audit import EffectPolicy

USAGE = "usage: python -m kavi.runtime.guard --policy-json JSON (-m MODULE | --script FILE) [ARGS...]"
USAGE_EXIT_CODE = 2
# `-c` instead of `-m kavi.runtime.guard`: the same launcher without importing runpy for every run.
BOOTSTRAP = "import sys; from kavi.runtime.guard import main; sys.exit(main(sys.argv[1:]))"


def guarded_python_argv(
    policy: EffectPolicy,
    *,
    module: str | None = None,
    script: str | None = None,
    args: Sequence[str] = (),
    python: str | None = None,
) -> list[str]:
    """The argv that runs ``module`` or ``script`` under ``policy``; give it to ``run_isolated``."""
    if (module is None) == (script is None):
        raise ValueError("give exactly one of module or script")
    target = ["-m", module] if module is not None else ["--script", str(script)]
    interpreter = python or sys.executable
    return [interpreter, "-B", "-c", BOOTSTRAP, "--policy-json", policy.to_json(), *target, *args]


def is_guarded(argv: Sequence[str]) -> bool:
    """Whether ``argv`` was built by :func:`guarded_python_argv` (the guard applies the kernel layers
    itself, so the executor needs no launcher in front of it)."""
    return len(argv) > 3 and argv[1] == "-B" and argv[2] == "-c" and argv[3] == BOOTSTRAP


def main(argv: Sequence[str]) -> int:
    """Parse, install the hook, hand over. Returns only on a usage error; the target's exit is its
    own."""
    parsed = _parse(list(argv))
    if parsed is None:
        sys.stderr.write(USAGE + "\n")
        return USAGE_EXIT_CODE
    policy_json, kind, target, rest = parsed
    sys.dont_write_bytecode = True  # a refused .pyc write must not break an import
    # The kernel layers first (no_new_privs, capabilities, Landlock, seccomp: whatever the executor
    # put in KAVI_CONFINE), so they hold even where the hook below is got around.
    apply_from_environment()
    policy = json.loads(policy_json)
    if RELAY_ENV in os.environ:  # FULL + NETWORK: the relay to the egress proxy (kavi.runtime.relay)
        from kavi.runtime.relay import prepare

        policy = prepare(policy)
    install(policy)
    sys.argv = [target, *rest]
    if kind == "module":
        import runpy  # only modules need it; scripts skip its import cost

        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        _run_script(target)
    return 0


def _run_script(path: str) -> None:
    """Run a file as ``__main__``, like ``python FILE``; its bytes are read after the hook is in
    force."""
    import types  # already loaded by the interpreter's start-up

    with open(path, "rb") as handle:
        source = handle.read()
    module = types.ModuleType("__main__")
    module.__file__ = path
    sys.modules["__main__"] = module
    folder = os.path.dirname(os.path.abspath(path))
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path[0] = folder
    else:
        sys.path.insert(0, folder)
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - running the target is the point


def _parse(argv: list[str]) -> tuple[str, str, str, list[str]] | None:
    if len(argv) < 4 or argv[0] != "--policy-json":
        return None
    policy_json, flag, target = argv[1], argv[2], argv[3]
    kinds = {"-m": "module", "--script": "script"}
    if flag not in kinds:
        return None
    return policy_json, kinds[flag], target, argv[4:]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
