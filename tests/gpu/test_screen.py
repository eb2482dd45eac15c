"""The static screen: shipped kernels pass, each shortcut is refused by its named check.

Pure AST: these tests need neither torch nor triton.
"""

from __future__ import annotations

import textwrap

import pytest

from kavi.gpu.screen import iter_checks, kernel_kinds, screen_kernel, screen_kernel_test

from .conftest import ADVERSARIAL, KERNELS, shipped_file

SHIPPED = ["vector_add", "softmax", "matmul", "attention", "vector_scale_cupy"]
HEADER = "import torch\nimport triton\nimport triton.language as tl\n\n@triton.jit\ndef _k(x_ptr):\n    pass\n\n"


def checks_of(source: str) -> set[str]:
    return {finding.check for finding in screen_kernel(source, "kernels/candidate.py")}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_kernels_and_tests_pass_the_screen(name):
    kernel = shipped_file(f"{name}.py").read_text()
    assert screen_kernel(kernel, f"kernels/{name}.py") == []
    assert screen_kernel_test(shipped_file(f"test_{name}.py").read_text(), f"kernels/test_{name}.py") == []


def test_kernel_kinds_detects_each_kind():
    assert kernel_kinds((KERNELS / "softmax.py").read_text()) == {"triton"}
    assert kernel_kinds(shipped_file("vector_scale_cupy.py").read_text()) == {"cupy"}
    assert "cuda" in kernel_kinds("from torch.utils.cpp_extension import load_inline\nm = load_inline('m', '')\n")
    assert "triton-autotune" in kernel_kinds(
        "import triton\n@triton.autotune(configs=[], key=[])\n@triton.jit\ndef k(): pass\n"
    )


SCREEN_ADVERSARIES = {
    path.name: path.read_text().splitlines()[0].split(":")[1].strip() for path in sorted(ADVERSARIAL.glob("*.py"))
}
STATIC = {name: check for name, check in SCREEN_ADVERSARIES.items() if check in set(iter_checks())}


@pytest.mark.parametrize("filename", sorted(STATIC))
def test_static_adversaries_are_refused_by_their_check(filename):
    assert filename  # the parametrisation is not empty
    expected = STATIC[filename]
    assert expected in checks_of((ADVERSARIAL / filename).read_text())


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("def run(x, y):\n    return x @ y\n", "torch-compute"),
        ("def run(x):\n    return x.sum()\n", "torch-compute"),
        ("def run(x):\n    out = torch.empty_like(x)\n    return out * 2\n", "torch-compute"),
        (
            "import torch.nn.functional as F\ndef run(x):\n    return F.softmax(x, -1)\n",
            "torch-compute",
        ),
        ("from torch import einsum\ndef run(x):\n    return einsum('ij->i', x)\n", "torch-compute"),
        (
            "def run(q, k, v):\n    return torch.nn.functional.scaled_dot_product_attention(q, k, v)\n",
            "torch-compute",
        ),
        (
            "def run(x):\n    out = torch.empty_like(x)\n    out[:] = x\n    return out\n",
            "torch-compute",
        ),
        ("import numpy\ndef run(x):\n    return x\n", "import"),
        ("import threading\ndef run(x):\n    return x\n", "concurrency"),
        ("import multiprocessing\ndef run(x):\n    return x\n", "concurrency"),
        ("import ctypes\ndef run(x):\n    return x\n", "introspection"),
        ("import gc\ndef run(x):\n    return x\n", "introspection"),
        ("import inspect\ndef run(x):\n    return x\n", "introspection"),
        ("import sys\ndef run(x):\n    return sys._getframe(1)\n", "introspection"),
        ("def run(x):\n    return getattr(torch, 'add')(x, x)\n", "introspection"),
        ("import os\ndef run(x):\n    return x\n", "file-access"),
        ("def run(x):\n    open('/tmp/a').read()\n    return x\n", "file-access"),
        ("def run(x):\n    torch.cuda.synchronize = None\n    return x\n", "monkeypatch"),
        (
            "import time\ndef run(x):\n    time.perf_counter = lambda: 0.0\n    return x\n",
            "monkeypatch",
        ),
        ("def run(x):\n    global _SEEN\n    return x\n", "state"),
        ("_SEEN = {}\ndef run(x):\n    return x\n", "state"),
        ("def run(x, cache=[]):\n    return x\n", "state"),
        ("def run(x):\n    run.last = x\n    return x\n", "state"),
        ("def run(x):\n    return {id(x): x}[id(x)]\n", "state"),
        ("import functools\n@functools.lru_cache\ndef run(x):\n    return x\n", "state"),
        ("class Holder:\n    pass\ndef run(x):\n    return x\n", "state"),
        ("def run(x):\n    try:\n        return x\n    finally:\n        pass\n", "fallback"),
        ("def run(x):\n    s = torch.cuda.current_stream()\n    return x\n", "streams"),
        ("def run(x):\n    k[(1,)](x, stream=0)\n    return x\n", "streams"),
        ("def run(x):\n    return x.__class__\n", "introspection"),
    ],
)
def test_screen_rule(body, check):
    assert check in checks_of(HEADER + textwrap.dedent(body))


def test_glue_is_allowed():
    source = HEADER + textwrap.dedent(
        """
        import math

        def run(x: torch.Tensor, scale: float = 1.0):
            x = x.contiguous().view(-1)
            n = x.numel()
            rows, cols = x.shape[0], x.stride(0)
            out = torch.empty((n,), device=x.device, dtype=x.dtype)
            grid = (triton.cdiv(n, 128) + (n % 2), math.ceil(n / 7))
            if x.dtype == torch.float16 and n > 3:
                grid = (grid[0] * 2,)
            _k[grid](x)
            return out
        """
    )
    assert checks_of(source) == set()


def test_missing_kernel_and_missing_run_are_named():
    assert checks_of("import torch\n\ndef run(x):\n    return x\n") == {"kernel-present"}
    assert "kernel-present" in checks_of(HEADER)


def test_syntax_error_is_a_finding():
    findings = screen_kernel("def run(:\n", "kernels/k.py")
    assert [f.check for f in findings] == ["syntax"]


def test_test_files_may_compute_but_not_escape():
    assert (
        screen_kernel_test("import torch\ndef test_a():\n    assert (torch.ones(2) @ torch.ones(2)) == 2\n", "t.py")
        == []
    )
    bad = "import threading\nimport torch\ntorch.cuda.synchronize = None\n"
    assert {f.check for f in screen_kernel_test(bad, "t.py")} == {"concurrency", "monkeypatch"}


# -- one name resolution with the policy gate: every binding of a name is judged (issue 9 §10) -----

# (id, body after HEADER, check that must fire)
SHADOWING = [
    (
        "def-local-alias",
        "def _unused():\n    import math as torch\ndef run(x):\n    return torch.nn.functional.softmax(x, -1)\n",
        "torch-compute",
    ),
    (
        "dead-branch-alias",
        "import torch.nn.functional as F\nif False:\n    import math as F\n"
        "def run(q, k, v):\n    return F.scaled_dot_product_attention(q, k, v)\n",
        "torch-compute",
    ),
    (
        "later-from-import",
        "from torch import nn\ndef _shadow():\n    from math import inf as nn\n"
        "def run(x):\n    return nn.functional.gelu(x)\n",
        "torch-compute",
    ),
    (
        "module-as-value",
        "def run(q, k, v):\n    t = torch\n    return t.nn.functional.scaled_dot_product_attention(q, k, v)\n",
        "torch-compute",
    ),
    ("submodule-as-value", "import torch.nn.functional as F\nops = [F]\ndef run(x):\n    return x\n", "torch-compute"),
]


@pytest.mark.parametrize(("body", "check"), [case[1:] for case in SHADOWING], ids=[case[0] for case in SHADOWING])
def test_a_shadowing_alias_does_not_hide_torch(body, check):
    assert check in checks_of(HEADER + body)


@pytest.mark.parametrize(
    "body",
    [
        "def run(x):\n    assert torch.cuda.is_available()\n    return x\n",
        "def run(x):\n    major, _ = torch.cuda.get_device_capability()\n    n = torch.cuda.device_count()\n"
        "    return x\n",
        "import math\ndef run(x, scale: float = 2.0):\n    s = math.exp(scale)\n    _k[(1,)](x)\n    return x\n",
    ],
    ids=["cuda-is-available", "device-capability", "math-exp"],
)
def test_documented_glue_is_not_read_as_a_tensor_method(body):
    assert checks_of(HEADER + body) == set()


@pytest.mark.parametrize(
    "prefix",
    [b"# coding: utf-7\n", b"#!/usr/bin/env python\x0c\n# -*- coding: utf-7 -*-\n", b"\x0c# coding: latin-1\n"],
    ids=["utf-7-cookie", "form-feed-cookie", "latin-1-cookie"],
)
def test_the_screen_reads_the_bytes_python_runs(prefix):
    hidden = b"def run(x):\n    return x #+AAo-    return torch.nn.functional.softmax(x, -1)\n"
    findings = screen_kernel(prefix + HEADER.encode() + hidden, "kernels/candidate.py")
    assert [f.check for f in findings] == ["source-encoding"]


def test_the_screen_and_the_policy_gate_share_one_finding_and_one_resolver():
    from kavi.analysis import Bindings, Finding
    from kavi.gates import policy
    from kavi.gpu import screen

    assert screen.Finding is Finding is policy.Finding
    assert policy.Bindings is screen.Bindings is Bindings


# Computed names, exec-like calls, the frozen reference and package installs (issue 15 §1 "Screen").
COMPUTED = [
    (
        "token-pasted-getattr",
        "def run(x):\n    return getattr(torch.nn.functional, 'soft' + 'max')(x, -1)\n",
        "introspection",
    ),
    ("globals-lookup", "def run(x):\n    return globals()['tor' + 'ch'].softmax(x, -1)\n", "introspection"),
    ("vars-lookup", "def run(x):\n    return vars(torch)['softmax'](x, -1)\n", "introspection"),
    ("eval-name", "def run(x):\n    return eval('torch.soft' + 'max')(x, -1)\n", "introspection"),
    ("dunder-import", "def run(x):\n    return __import__('torch').softmax(x, -1)\n", "introspection"),
    ("module-dict", "def run(x):\n    return torch.__dict__['softmax'](x, -1)\n", "introspection"),
    (
        "identity-laundering",
        "def run(x):\n    f = lambda m: m\n    return f(torch).nn.functional.mish(x)\n",
        "torch-compute",
    ),
    ("default-argument", "def run(x, ops=torch.nn.functional):\n    return ops.mish(x)\n", "torch-compute"),
    ("frozen-reference", "from kavi.gpu.reference import load_reference\ndef run(x):\n    return x\n", "import"),
    ("references-folder", "import kernels.references.softmax as ref\ndef run(x):\n    return ref.run(x)\n", "import"),
    (
        "pip-install",
        "import subprocess\ndef run(x):\n    subprocess.run(['pip', 'install', 'x'])\n    return x\n",
        "file-access",
    ),
    ("os-system-install", "import os\ndef run(x):\n    os.system('pip install x')\n    return x\n", "file-access"),
    (
        "operator-lookup",
        "import operator\ndef run(x):\n    return operator.attrgetter('softmax')(torch)(x, -1)\n",
        "import",
    ),
]


@pytest.mark.parametrize(("body", "check"), [case[1:] for case in COMPUTED], ids=[case[0] for case in COMPUTED])
def test_computed_names_and_escapes_are_refused(body, check):
    assert check in checks_of(HEADER + body)


# Device and interpreter branches, tensors that outlive a call (issue 15 §1).
DEVICE_AND_STATE = [
    (
        "is-cuda-branch",
        "def run(x):\n    if x.is_cuda:\n        return torch.empty_like(x)\n    _k[(1,)](x)\n    return x\n",
    ),
    ("device-type-branch", "def run(x):\n    if x.device.type == 'cpu':\n        _k[(1,)](x)\n    return x\n"),
    (
        "tainted-flag",
        "def run(x):\n    on_gpu = torch.cuda.is_available()\n    if on_gpu:\n        return x\n    return x\n",
    ),
    ("ifexp-call", "def run(x):\n    return torch.empty_like(x) if x.is_cuda else x\n"),
    ("flag-into-kernel", "def run(x):\n    _k[(1,)](x, x.is_cuda)\n    return x\n"),
    ("interpreter-name", "import triton.runtime.interpreter as i\ndef run(x):\n    return x\n"),
    ("interpreter-string", "def run(x, name: str = 'TRITON_INTERPRET'):\n    return x\n"),
]
STATE = [
    ("import-time-tensor", "_POOL = torch.empty(1 << 20)\ndef run(x):\n    return x\n"),
    ("import-time-counter", "_FLIP = torch.empty(1, 2)\ndef run(x):\n    return x\n"),
    ("t-underscore", "def run(x):\n    out = torch.empty_like(x)\n    out.t_()\n    return out\n"),
    ("transpose-underscore", "def run(x):\n    x.transpose_(0, 1)\n    return x\n"),
    ("allocating-default", "def run(x, pool=torch.empty(8)):\n    return x\n"),
]


@pytest.mark.parametrize("body", [case[1] for case in DEVICE_AND_STATE], ids=[case[0] for case in DEVICE_AND_STATE])
def test_branches_on_the_device_or_the_interpreter_are_refused(body):
    assert "device-branch" in checks_of(HEADER + body)


@pytest.mark.parametrize("body", [case[1] for case in STATE], ids=[case[0] for case in STATE])
def test_tensors_that_outlive_a_call_are_refused(body):
    assert "state" in checks_of(HEADER + body)


@pytest.mark.parametrize(
    "body",
    [
        "def run(x):\n    out = torch.empty((4,), device=x.device, dtype=x.dtype)\n    _k[(1,)](out)\n    return out\n",
        "def run(x):\n    n = x.shape[0]\n    if x.is_cuda:\n        block, warps = 128, (4 if n > 2 else 8)\n"
        "    else:\n        block, warps = 32, 4\n    _k[(1,)](x, BLOCK=block, num_warps=warps)\n    return x\n",
        "def run(x):\n    block = 128 if x.is_cuda else 32\n    _k[(1,)](x, BLOCK=block)\n    return x\n",
        '"""Runs on a GPU or through Triton\'s CPU interpreter."""\ndef run(x):\n    return x\n',
    ],
    ids=["device-keyword", "launch-constants", "launch-constant-ifexp", "docstring"],
)
def test_launch_constants_chosen_by_device_are_allowed(body):
    assert checks_of(HEADER + body) == set()
