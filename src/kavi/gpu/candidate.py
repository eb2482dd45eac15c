"""Importing a candidate kernel inside the child process, shared by the ``check`` and ``bench`` commands.

Its own module so that :mod:`kavi.gpu.child` (which dispatches to :mod:`kavi.gpu.timing`) and the timing
code both use it without importing each other.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def import_candidate(path: Path) -> types.ModuleType:
    """Import the kernel file under a private name (the gate judges these bytes, copied into a
    sandbox)."""
    spec = importlib.util.spec_from_file_location(f"kavi_candidate_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
