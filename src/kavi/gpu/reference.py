"""Loading a frozen reference file and turning it into check cases.

A reference file is plain Python that defines ``reference(*inputs)``, ``make_inputs(size, seed,
device,
dtype)`` and the module constants ``CHECK_SIZES``, ``BENCH_SIZES`` and ``DTYPES`` (optionally
``MIN_SPEEDUP``, ``flops(size)``, ``bytes_moved(size[, dtype])`` and ``derive_size(size, k)``). It
is run
from its frozen text (never from the path it came from), so what the gates check is what was
proposed.

Everything that touches torch is imported inside functions: the rest of kavi never needs torch.
"""

from __future__ import annotations

import hashlib
import inspect
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kavi.errors import SpecError

Size = int | tuple[int, ...]

DISTRIBUTIONS = ("normal", "uniform", "heavy_tailed", "large_magnitude")
SUPPORTED_DTYPES = ("float32", "float16", "bfloat16")
INTERPRETER_DTYPES = ("float32", "float16")  # bf16 is silently wrong under Triton's interpreter
DEFAULT_MIN_SPEEDUP = 1.0
MIN_CHECK_SIZES = 2


@dataclass(frozen=True)
class ReferenceMetadata:
    """The constants a reference file declares, validated and normalised."""

    check_sizes: tuple[Size, ...]
    bench_sizes: tuple[Size, ...]
    dtypes: tuple[str, ...]
    min_speedup: float
    has_flops: bool
    has_bytes_moved: bool
    accepts_dist: bool


def load_reference(source: str, name: str) -> types.ModuleType:
    """Execute the frozen reference text as a fresh module (the text, not a file that could
    change)."""
    module = types.ModuleType(f"kavi_reference_{name}")
    module.__file__ = f"<reference {name}>"
    code = compile(source, f"<reference {name}>", "exec")
    exec(code, module.__dict__)  # noqa: S102 - the reference is the proposer's frozen, trusted spec
    return module


def normalize_size(value: Any, where: str) -> Size:
    """An int or a tuple of ints, each at least 1."""
    if isinstance(value, bool):
        raise SpecError(f"{where}: {value!r} is not a size (use an int or a tuple of ints)")
    if isinstance(value, int):
        if value < 1:
            raise SpecError(f"{where}: sizes must be positive, got {value}")
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        if any(v < 0 for v in value):
            raise SpecError(f"{where}: size {value!r} has a negative entry")
        return tuple(value)
    raise SpecError(f"{where}: {value!r} is not a size (use an int or a tuple of ints)")


def _sizes(module: types.ModuleType, attribute: str) -> tuple[Size, ...]:
    raw = getattr(module, attribute, None)
    if not isinstance(raw, list | tuple) or not raw:
        raise SpecError(f"the reference must define {attribute} as a non-empty tuple of sizes")
    return tuple(normalize_size(value, f"{attribute}[{index}]") for index, value in enumerate(raw))


def dtype_name(value: Any) -> str:
    """Accept ``"float16"``, ``"fp16"`` or ``torch.float16``; return the canonical name."""
    text = str(value).removeprefix("torch.")
    aliases = {
        "fp32": "float32",
        "float": "float32",
        "fp16": "float16",
        "half": "float16",
        "bf16": "bfloat16",
    }
    text = aliases.get(text, text)
    if text not in SUPPORTED_DTYPES:
        raise SpecError(f"unsupported dtype {value!r}: use {', '.join(SUPPORTED_DTYPES)}")
    return text


def read_metadata(module: types.ModuleType) -> ReferenceMetadata:
    """Validate the reference's constants and callables; the message names what to fix."""
    for function in ("reference", "make_inputs"):
        if not callable(getattr(module, function, None)):
            raise SpecError(f"the reference file must define {function}()")
    check_sizes = _sizes(module, "CHECK_SIZES")
    if len(set(check_sizes)) < MIN_CHECK_SIZES:
        raise SpecError(f"CHECK_SIZES needs at least {MIN_CHECK_SIZES} different sizes")
    if all(_all_powers_of_two(size) for size in check_sizes):
        raise SpecError(
            "CHECK_SIZES are all powers of two: add an odd size (e.g. 1000 or (37, 100)) so masks are tested"
        )
    bench_sizes = _sizes(module, "BENCH_SIZES")
    raw_dtypes = getattr(module, "DTYPES", None)
    if not isinstance(raw_dtypes, list | tuple) or not raw_dtypes:
        raise SpecError("the reference must define DTYPES, e.g. ('float32', 'float16')")
    dtypes = tuple(dict.fromkeys(dtype_name(value) for value in raw_dtypes))
    min_speedup = getattr(module, "MIN_SPEEDUP", DEFAULT_MIN_SPEEDUP)
    if not isinstance(min_speedup, int | float) or isinstance(min_speedup, bool) or not min_speedup > 0:
        raise SpecError(f"MIN_SPEEDUP must be a positive number, got {min_speedup!r}")
    for optional in ("flops", "bytes_moved", "derive_size"):
        if hasattr(module, optional) and not callable(getattr(module, optional)):
            raise SpecError(f"{optional} must be a function")
    return ReferenceMetadata(
        check_sizes=check_sizes,
        bench_sizes=bench_sizes,
        dtypes=dtypes,
        min_speedup=float(min_speedup),
        has_flops=callable(getattr(module, "flops", None)),
        has_bytes_moved=callable(getattr(module, "bytes_moved", None)),
        accepts_dist=_accepts_dist(module.make_inputs),
    )


def _accepts_dist(function: Callable[..., Any]) -> bool:
    try:
        return "dist" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _all_powers_of_two(size: Size) -> bool:
    dims = (size,) if isinstance(size, int) else size
    return all(d > 0 and d & (d - 1) == 0 for d in dims)


# --- sizes and seeds the packet never shows
# ----------------------------------------------------------


def salt_from(*parts: str) -> int:
    """A deterministic salt (from the spec and candidate hashes) that picks seeds and hidden
    sizes."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return int(digest[:8], 16)


def _odd_non_power_of_two(value: int) -> int:
    value = value + 1 if value % 2 == 0 else value
    while value & (value - 1) == 0:
        value += 2
    return value


def default_derive_size(size: Size, k: int) -> Size:
    """Grow every dimension to an odd, non-power-of-two value (masks and tails get exercised)."""
    if isinstance(size, int):
        return _odd_non_power_of_two(size + 2 * k + 1)
    return tuple(_odd_non_power_of_two(d + 2 * k + 1) for d in size)


def hidden_size(module: types.ModuleType, check_sizes: Sequence[Size], salt: int) -> Size:
    """A size derived from the spec that is not one of CHECK_SIZES (the packet never shows it).

    It is derived from the elementwise largest check size and is larger than every check size in
    every dimension the reference lets grow (a dimension its ``derive_size`` ever grows; all of them
    by default), so a kernel sized to the sizes it was shown (tiles that silently stop) fails.
    """
    derive = getattr(module, "derive_size", None)
    base = largest_size(check_sizes)

    def derived(k: int) -> Size:
        raw = derive(base, k) if callable(derive) else default_derive_size(base, k)
        return normalize_size(raw, "derive_size(...)")

    growable = growable_dimensions(derived, base)
    for attempt in range(64):
        k = (salt + attempt) % 7 + attempt
        size = derived(k)
        if size in check_sizes:
            continue
        if all(dims(size)[i] > max(dims(s)[i] for s in check_sizes) for i in growable):
            return size
    raise SpecError(
        "derive_size never returns a size larger than every check size in the dimensions it grows: "
        "make it grow them from the size it is given"
    )


def dims(size: Size) -> tuple[int, ...]:
    return (size,) if isinstance(size, int) else tuple(size)


def largest_size(sizes: Sequence[Size]) -> Size:
    """The elementwise maximum of sizes of one shape (the first size when their shapes differ)."""
    shapes = {len(dims(size)) for size in sizes}
    if len(shapes) != 1 or any(isinstance(size, int) != isinstance(sizes[0], int) for size in sizes):
        return sizes[0]
    widest = tuple(max(column) for column in zip(*(dims(size) for size in sizes), strict=True))
    return widest[0] if isinstance(sizes[0], int) else widest


def growable_dimensions(derived: Callable[[int], Size], base: Size) -> list[int]:
    """The dimensions ``derive_size`` grows beyond ``base`` for some salt."""
    start = dims(base)
    grown: set[int] = set()
    for k in range(16):
        size = dims(derived(k))
        if len(size) != len(start):
            continue
        grown |= {i for i, (new, old) in enumerate(zip(size, start, strict=True)) if new > old}
    return sorted(grown)


def check_seeds(salt: int, count: int) -> list[int]:
    """Seeds the builder cannot predict (they depend on the candidate's hash), at least
    ``count``."""
    return [(salt * 7919 + 104729 * index) % 1_000_003 for index in range(count)]


# --- inputs
# ------------------------------------------------------------------------------------------


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype_name(name)]


def make_case_inputs(
    module: types.ModuleType, size: Size, seed: int, device: str, dtype: str, dist: str
) -> tuple[Any, ...]:
    """Inputs for one case. A reference with a ``dist`` parameter shapes the distribution itself;
    otherwise floating inputs are transformed here (see :func:`apply_distribution`)."""
    import torch

    target = torch_dtype(dtype)
    if _accepts_dist(module.make_inputs):
        inputs = module.make_inputs(size, seed, device, target, dist=dist)
    else:
        inputs = apply_distribution(module.make_inputs(size, seed, device, target), seed, dist)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, tuple | list) or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise SpecError("make_inputs must return a tuple of tensors")
    return tuple(inputs)


_LARGE_SCALE = {"float32": 1e4, "float16": 1e2, "bfloat16": 1e4}
_HEAVY_CLIP = {"float32": 1e4, "float16": 1e3, "bfloat16": 1e4}


def apply_distribution(inputs: Any, seed: int, dist: str) -> tuple[Any, ...]:
    """Reshape floating inputs to ``dist`` for references whose make_inputs has no ``dist``
    parameter.

    normal: unchanged; uniform: U(-1, 1); heavy_tailed: Student-t with 3 degrees of freedom,
    clipped;
    large_magnitude: scaled by 1e4 (1e2 for fp16). Integer and bool inputs are never touched.
    """
    import torch

    tensors = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    if dist == "normal":
        return tensors
    generator = torch.Generator().manual_seed(seed ^ 0x5EED)
    result = []
    for tensor in tensors:
        if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()):
            result.append(tensor)
            continue
        name = dtype_name(tensor.dtype)
        shape = tuple(tensor.shape)
        if dist == "uniform":
            values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
        elif dist == "heavy_tailed":
            normal = torch.randn(shape, generator=generator, dtype=torch.float64)
            chi = torch.randn((3, *shape), generator=generator, dtype=torch.float64).square().mean(0).sqrt()
            values = (normal / chi).clamp(-_HEAVY_CLIP[name], _HEAVY_CLIP[name])
        else:
            values = tensor.detach().to("cpu", torch.float64) * _LARGE_SCALE[name]
        result.append(values.to(device=tensor.device, dtype=tensor.dtype))
    return tuple(result)


# Structure the packet never shows, added on top of a distribution (issue 15: analytical shortcuts).
STRUCTURES = ("plain", "row_scales", "strided")
# Small, unit, large, zero and tiny rows (an epsilon dropped or added shows on the zero and tiny ones;
# fp16 goes far from unit scale both ways without leaving its range).
ROW_SCALES = {
    "float32": (2.0**-8, 1.0, 2.0**8, 0.0, 2.0**-40),
    "float16": (2.0**-4, 1.0, 2.0**4, 0.0, 2.0**-12),
    "bfloat16": (2.0**-8, 1.0, 2.0**8, 0.0, 2.0**-40),
}
VECTOR_ROW = 64  # a 1-D tensor's "rows" for row scaling and row-wise comparison


def row_scale_vector(rows: int, dtype: str) -> Any:
    """Scales cycling small, unit, large, zero, tiny: powers of two (and zero), so scaling is exact."""
    import torch

    scales = ROW_SCALES[dtype]
    return torch.tensor([scales[r % len(scales)] for r in range(rows)], dtype=torch.float64)


def apply_row_scales(inputs: Sequence[Any], dtype: str) -> tuple[Any, ...]:
    """Rows of very different magnitudes in every floating input (1-D: chunks of VECTOR_ROW;
    the tail of a 1-D input whose length is not a multiple keeps one scale per chunk)."""
    import torch

    result = []
    for tensor in inputs:
        if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.numel() > 1):
            result.append(tensor)
            continue
        values = tensor.detach().to("cpu", torch.float64)
        if values.dim() == 1:
            pad = (-values.shape[0]) % VECTOR_ROW
            padded = torch.cat([values, values.new_zeros(pad)]).reshape(-1, VECTOR_ROW)
            scaled = (padded * row_scale_vector(padded.shape[0], dtype)[:, None]).reshape(-1)[: values.shape[0]]
        else:
            rows = values.reshape(-1, values.shape[-1])
            scaled = (rows * row_scale_vector(rows.shape[0], dtype)[:, None]).reshape(values.shape)
        result.append(scaled.to(device=tensor.device, dtype=tensor.dtype))
    return tuple(result)


def to_float64(inputs: Sequence[Any]) -> tuple[Any, ...]:
    """The float64 twin of the inputs (integer inputs stay as they are)."""
    import torch

    return tuple(t.to(torch.float64) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs)


def call_optional(module: types.ModuleType, function: str, size: Size, dtype: str) -> float | None:
    """``flops(size)`` or ``bytes_moved(size[, dtype])`` when the reference defines it."""
    target = getattr(module, function, None)
    if not callable(target):
        return None
    try:
        parameters = len(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        parameters = 1
    value = target(size, torch_dtype(dtype)) if parameters >= 2 else target(size)
    return float(value)
