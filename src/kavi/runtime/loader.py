"""Turning verified bytes into a module without ever reading the file a second time."""

from __future__ import annotations

import hashlib
import sys
import types

from kavi.errors import IntegrityError


def check_bytes(source: bytes, expected_sha256: str, *, what: str) -> None:
    """Refuse bytes whose hash is not the one the ledger (or lock) vouches for."""
    actual = hashlib.sha256(source).hexdigest()
    if actual != expected_sha256:
        raise IntegrityError(
            f"{what} does not match its TRUSTED hash (expected {expected_sha256[:12]}, found {actual[:12]});"
            " nothing of it was run",
            hint="restore it with `kavi promote-skill` or investigate with `kavi audit`",
        )


def module_from_bytes(name: str, source: bytes, *, filename: str) -> types.ModuleType:
    """Execute ``source`` as module ``name``. The caller has already checked its hash."""
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    code = compile(source, filename, "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 - these are the exact bytes whose hash was just checked
    return module
