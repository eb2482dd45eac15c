"""The scanners' shared core reads the source Python runs and keeps every binding of a name."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from kavi.analysis import Bindings, SourceProblem, foreign_encoding, parse_source

HIDDEN = b"print('seen')  #+AAo-print('HIDDEN')\n"


@pytest.mark.parametrize(
    "prefix",
    [
        b"# coding: utf-7\n",
        b"#!/usr/bin/env python\x0c\n# -*- coding: utf-7 -*-\n",
        b"\x0c# coding: utf-7\n",
        b"\x0c\n# vim: set fileencoding=utf-7 :\n",
    ],
    ids=["cookie", "form-feed-line-1", "form-feed-before-cookie", "vim-after-form-feed"],
)
def test_every_cookie_python_obeys_is_found(prefix: bytes, tmp_path: Path) -> None:
    source = prefix + HIDDEN
    script = tmp_path / "candidate.py"
    script.write_bytes(source)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert "HIDDEN" in ran.stdout  # Python runs the line a UTF-8 reader sees as a comment
    assert foreign_encoding(source) is not None
    with pytest.raises(SourceProblem) as refused:
        parse_source(source, "candidate.py")
    assert refused.value.rule == "source-encoding"


@pytest.mark.parametrize(
    "source",
    [b"x = 1\n", b"# -*- coding: utf-8 -*-\nx = 1\n", b"\xef\xbb\xbfx = 1\n", "x = 'caf\u00e9'\n"],
    ids=["plain", "utf-8-cookie", "bom", "text"],
)
def test_utf8_sources_parse(source: str | bytes) -> None:
    assert isinstance(parse_source(source, "ok.py"), ast.Module)


def test_invalid_utf8_and_bad_syntax_are_problems_not_crashes() -> None:
    for source in (b"x = '\xff'\n", b"def f(:\n", b"(" * 400 + b")" * 400):
        with pytest.raises(SourceProblem) as problem:
            parse_source(source, "bad.py")
        assert problem.value.rule == "syntax"


def test_a_name_bound_twice_stands_for_both() -> None:
    tree = ast.parse("import torch\ndef _unused():\n    import math as torch\nfrom os import path as torch\n")
    bindings = Bindings.of(tree)
    chain = ast.parse("torch.nn.functional", mode="eval").body
    assert bindings.resolve(chain) == {"torch.nn.functional", "math.nn.functional", "os.path.nn.functional"}
    assert bindings.roots(chain) == {"torch", "math", "os"}


@pytest.mark.parametrize(
    "source",
    [b"# coding: no-such-codec\nx = 1\n", b"\xef\xbb\xbf# coding: utf-7\nx = 1\n"],
    ids=["unknown", "bom-and-cookie"],
)
def test_declarations_python_refuses_are_foreign_too(source: bytes) -> None:
    assert foreign_encoding(source) is not None
