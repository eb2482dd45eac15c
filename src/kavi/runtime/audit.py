"""Enforce a skill's declared side effects inside the child, with a PEP 578 audit hook.

The hook is installed by :mod:`kavi.runtime.guard` before a single byte of candidate or skill code
runs. It sees every audited operation of the interpreter (``open``, ``os.remove``,
``socket.connect``, ``subprocess.Popen``, ``ctypes.dlopen`` ...) and refuses those the side-effect
class does not declare.

Why a hook and not only the OS: without bubblewrap it is the only thing that knows *which* writes,
hosts or programs a class allows; with bubblewrap it is defense in depth and gives the skill a
clear, named error. It is **not** a security boundary on its own: code that reaches native code (a C
extension, ``os.open`` with ``dir_fd``, ``os.mkfifo``) can act without an audit event. bubblewrap is
the boundary.

This module is the parent-side API (a typed, frozen :class:`EffectPolicy`); the hook itself lives in
:mod:`kavi.runtime.hook`, which the child imports without ``dataclasses`` or ``typing``.
"""

# string paths on purpose: they must compare equal to the hook's realpath strings.
# ruff: noqa: PTH100, PTH110, PTH111, PTH112, PTH113, PTH117, PTH120

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kavi.errors import IsolationError
from kavi.runtime import hook
from kavi.runtime.hook import BLOCKED_EXIT_CODE, BLOCKED_MARKER, EffectBlocked
from kavi.side_effects import SideEffect

if TYPE_CHECKING:
    from kavi.side_effects import EffectDeclaration


@dataclass(frozen=True)
class EffectPolicy:
    """What the hook allows. Paths are absolute; the policy crosses the process boundary as JSON.

    ``extra_write_roots`` are writable for every class (a private folder of the verification run);
    ``private_tmp`` makes the ``$TMPDIR`` the executor gives the child writable, so pytest's
    ``tmp_path`` works for every class. ``hidden_roots`` cannot be read, except below one of
    ``visible_roots``.
    """

    side_effect: SideEffect = SideEffect.READ_ONLY
    write_roots: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    extra_write_roots: tuple[str, ...] = ()
    hidden_roots: tuple[str, ...] = ()
    visible_roots: tuple[str, ...] = ()
    private_tmp: bool = True

    @classmethod
    def from_spec(cls, spec: EffectDeclaration, root: Path, *, hide_home: bool = True) -> EffectPolicy:
        """The policy a spec declares, its relative write roots anchored at workspace ``root``."""
        base = root.resolve()
        hidden, visible = default_hidden_roots(extra_visible=(str(base),)) if hide_home else ((), ())
        return cls(
            side_effect=spec.side_effect,
            write_roots=tuple(str(checked_root(base, entry, "write root")) for entry in spec.write_roots),
            allow_hosts=tuple(spec.allow_hosts),
            executables=tuple(spec.executables),
            secrets=tuple(spec.secrets),
            hidden_roots=hidden,
            visible_roots=visible,
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["side_effect"] = str(self.side_effect)
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EffectPolicy:
        data = hook.normalize_policy(json.loads(text))
        return cls(**{**data, "side_effect": SideEffect(data["side_effect"])})


def checked_root(workspace: Path, entry: str, what: str) -> Path:
    """A spec's root anchored at the workspace, refused when any component below the workspace is a symlink.

    Resolving through links would let one skill redirect another: a FILE_WRITE skill plants
    ``out/cache -> /tmp`` and a second skill whose root is ``out/cache`` gets the host's /tmp. The workspace
    folder itself is resolved (it is the user's choice); below it, only real folders count. Missing
    components are fine: they are created later as real folders.
    """
    base = workspace.resolve()
    current = base
    for part in Path(entry).parts:
        if part in ("", ".", "..", "/"):
            raise IsolationError(f"the {what} {entry!r} is not a plain relative folder")
        current = current / part
        if current.is_symlink():
            raise IsolationError(
                f"the {what} {entry!r} goes through a symbolic link ({current.relative_to(base)} -> "
                f"{current.readlink()}); refused rather than followed",
                hint=f"remove the link {current} and make it a real folder",
            )
        if current.exists() and not current.is_dir():
            raise IsolationError(f"the {what} {entry!r} is not a folder ({current.relative_to(base)} is a file)")
    return current


def install_audit_hook(policy: EffectPolicy) -> None:
    """Install the hook in this process; idempotent, and the policy cannot be loosened later."""
    hook.install(policy.as_dict())


def default_hidden_roots(
    extra_visible: Sequence[str] = (),
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Hide the user's home (keys, tokens, shell history) but keep the interpreter and kavi
    readable.

    The interpreter or a virtual environment often lives under the home folder (pyenv, uv), so every
    folder Python imports from is re-exposed; a ``sys.path`` entry that would expose the whole home
    is not.
    """
    home = os.path.realpath(os.path.expanduser("~"))
    if home in ("/", "") or not os.path.isdir(home):
        return (), ()
    candidates = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        *sys.path,
        *extra_visible,
    ]
    visible: list[str] = []
    for candidate in candidates:
        if not candidate or not os.path.isabs(candidate) or not os.path.exists(candidate):
            continue
        real = os.path.realpath(candidate)
        if os.path.isfile(real):
            real = os.path.dirname(real)
        if hook.is_under(real, (home,)) and real != home and real not in visible:
            visible.append(real)
    return (home,), tuple(visible)


__all__ = [
    "BLOCKED_EXIT_CODE",
    "BLOCKED_MARKER",
    "EffectBlocked",
    "EffectPolicy",
    "default_hidden_roots",
    "install_audit_hook",
]
