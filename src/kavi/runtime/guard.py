"""A launcher that installs the side-effect audit hook, then runs a module or a script.

    python -B -m kavi.runtime.guard --policy-json '{...}' -m pytest -q tests
    python -B -m kavi.runtime.guard --policy-json '{...}' --script runner.py ARG...

The hook is in force before the first byte of the target is read, so nothing the target imports or runs
escapes it. Start-up cost matters (`run-skill` has 0.3 s for the whole process), so this module parses its
own arguments and imports only the standard library and kavi's stdlib-only leaves.
"""

from __future__ import annotations

import json
import runpy
import sys

from kavi.runtime.hook import install

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from kavi.runtime.audit import EffectPolicy

USAGE = "usage: python -m kavi.runtime.guard --policy-json JSON (-m MODULE | --script FILE) [ARGS...]"
USAGE_EXIT_CODE = 2


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
    return [interpreter, "-B", "-m", "kavi.runtime.guard", "--policy-json", policy.to_json(), *target, *args]


def main(argv: Sequence[str]) -> int:
    """Parse, install the hook, hand over. Returns only on a usage error; the target's exit is its own."""
    parsed = _parse(list(argv))
    if parsed is None:
        sys.stderr.write(USAGE + "\n")
        return USAGE_EXIT_CODE
    policy_json, kind, target, rest = parsed
    sys.dont_write_bytecode = True  # a refused .pyc write must not break an import
    install(json.loads(policy_json))
    if kind == "module":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *rest]
        runpy.run_path(target, run_name="__main__")
    return 0


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
