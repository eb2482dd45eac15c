# rejected-by: introspection
"""Puts its own folder on the import path and answers with the frozen reference next to it
(``kernels/references/vector_add.py``)."""

import os
import sys

import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from references.vector_add import reference


@triton.jit
def _unused(x_ptr):
    pass


def run(x, y):
    return reference(x, y)
