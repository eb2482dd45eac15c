"""Freezing a reference: valid references become a KernelSpec, degenerate ones are refused."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

pytest.importorskip("torch", reason="torch not installed: `uv sync --extra gpu`")
pytest.importorskip("triton", reason="triton not installed: `uv sync --extra gpu`")

from kavi.errors import SpecError
from kavi.gpu.probe import probe_reference
from kavi.gpu.spec import KernelSpec, freeze_reference, load_kernel_spec
from kavi.side_effects import SideEffect

from .conftest import KERNELS, make_spec

GOOD = """
import torch
CHECK_SIZES = (100, 37)
BENCH_SIZES = (1 << 20,)
DTYPES = ("float32",)

def make_inputs(size, seed, device, dtype):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(size, generator=g).to(device=device, dtype=dtype),)

def reference(x):
    return {body}
"""


def probe(tmp_path, source):
    path = tmp_path / "reference.py"
    path.write_text(textwrap.dedent(source))
    return probe_reference({"reference_path": str(path), "name": "demo"})


def test_freeze_reference_runs_the_probe_in_a_child_and_freezes_the_text(tmp_path):
    spec = freeze_reference("vector_add", "add two vectors", KERNELS / "references" / "vector_add.py")
    source = (KERNELS / "references" / "vector_add.py").read_text()
    assert spec.reference_source == source
    assert spec.reference_sha256 == hashlib.sha256(source.encode()).hexdigest()
    assert spec.check_sizes == (1000, 4099)
    assert spec.dtypes == ("float32", "float16", "bfloat16")
    assert spec.min_speedup == 0.9
    assert spec.side_effect is SideEffect.GPU_KERNEL
    assert spec.allowed_paths == ("kernels/vector_add.py", "kernels/test_vector_add.py")
    assert load_kernel_spec(spec.canonical_json()) == spec


def test_freeze_reference_refuses_a_degenerate_reference_through_the_child(tmp_path):
    path = tmp_path / "ref.py"
    path.write_text(GOOD.format(body="x * 0"))
    with pytest.raises(SpecError, match="all zero"):
        freeze_reference("zeros", "always zero", path)


def test_freeze_reference_refuses_bad_names_and_missing_files(tmp_path):
    with pytest.raises(SpecError):
        freeze_reference("Not A Name", "x", KERNELS / "references" / "vector_add.py")
    with pytest.raises(SpecError, match="does not exist"):
        freeze_reference("ghost", "x", tmp_path / "missing.py")


def test_a_good_reference_passes_the_probe(tmp_path):
    answer = probe(tmp_path, GOOD.format(body="x.tanh() + x"))
    assert answer["ok"], answer
    assert answer["metadata"]["check_sizes"] == [100, 37]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x * 0", "all zero"),
        ("torch.full_like(x, 3.0)", "constant"),
        ("torch.arange(x.numel(), dtype=x.dtype)", "unchanged across seeds"),
        ("x / 0 * 0", "NaN or Inf"),
        ("x.sum().item()", "torch.Tensor"),
        ("x.relu() * (x > 5)", "all zero"),
    ],
)
def test_degenerate_references_are_refused(tmp_path, body, message):
    answer = probe(tmp_path, GOOD.format(body=body))
    assert not answer["ok"]
    assert message in answer["error"]


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("torch.Generator().manual_seed(seed)", "None", "not deterministic"),
        ("manual_seed(seed)", "manual_seed(0)", "same inputs for different seeds"),
        ("CHECK_SIZES = (100, 37)", "CHECK_SIZES = (64, 128)", "powers of two"),
        ("CHECK_SIZES = (100, 37)", "CHECK_SIZES = (100,)", "at least 2"),
        ('DTYPES = ("float32",)', 'DTYPES = ("int8",)', "unsupported dtype"),
        ("BENCH_SIZES = (1 << 20,)", "", "BENCH_SIZES"),
    ],
)
def test_invalid_reference_files_are_refused(tmp_path, replace, by, message):
    source = GOOD.format(body="x.tanh() + x")
    assert replace in source
    answer = probe(tmp_path, source.replace(replace, by))
    assert not answer["ok"]
    assert message in answer["error"]


def test_a_reference_that_mutates_its_inputs_is_refused(tmp_path):
    answer = probe(tmp_path, GOOD.format(body="x.mul_(2)"))
    assert not answer["ok"] and "modifies its inputs" in answer["error"]


def test_kernel_spec_validates_its_hash_and_fields():
    spec = make_spec("softmax")
    data = json.loads(spec.canonical_json())
    assert data["kind"] == "kernel" and data["side_effect"] == "GPU_KERNEL"
    assert spec.kernel_path == "kernels/softmax.py" and spec.test_path == "kernels/test_softmax.py"
    with pytest.raises(ValueError):
        KernelSpec.model_validate({**data, "reference_sha256": "0" * 64})
    with pytest.raises(ValueError):
        KernelSpec.model_validate({**data, "surprise": 1})
    with pytest.raises(ValueError):
        KernelSpec.model_validate({**data, "dtypes": ["int8"]})
    assert spec.canonical_json() == KernelSpec.model_validate(data).canonical_json()


def test_build_rules_name_the_paths_dtypes_and_speed_target():
    from kavi.gpu.spec import kernel_build_rules

    rules = " ".join(kernel_build_rules(make_spec("matmul")))
    assert "kernels/matmul.py" in rules and "kernels/test_matmul.py" in rules
    assert "float16, bfloat16, float32" in rules
    assert ">= 0.9" in rules


@pytest.mark.parametrize("name", ["vector_add", "softmax", "matmul", "attention", "vector_scale_cupy"])
def test_every_shipped_reference_passes_the_probe(name):
    path = KERNELS / "references" / f"{name}.py"
    answer = probe_reference({"reference_path": str(path), "name": name})
    assert answer["ok"], answer
    assert len(answer["metadata"]["check_sizes"]) >= 2
