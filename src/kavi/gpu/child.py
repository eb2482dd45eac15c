"""The child process that runs reference and candidate code: ``python -m kavi.gpu.child COMMAND
REQUEST``.

Commands:

* ``probe``: load a reference file and refuse a degenerate one (for
:func:`kavi.gpu.spec.freeze_reference`).
* ``check``: import a candidate and run it on the cases in a ``.pt`` file, on cloned inputs, twice
per case
  with differently poisoned fresh memory; write the outputs and per-call facts to another ``.pt``
  file.
  The reference outputs are computed by the parent and never exist here.
* ``bench``: time a candidate against the torch baseline (GPU only; see :mod:`kavi.gpu.timing`).

The request is a JSON file; the answer is a file named in it. The parent sets ``TRITON_INTERPRET=1``
in
this process's environment when there is no GPU, so it is in place before the candidate module is
imported.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kavi.gpu.candidate import import_candidate

POISON_BYTES = (
    0xFF,
    0x7F,
)  # all-ones is NaN in every float format; 0x7F.. is NaN in fp16, huge in fp32
FLOOD_BYTES = 64 << 20


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("probe", "check", "bench"):
        print("usage: python -m kavi.gpu.child probe|check|bench REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    if args[0] == "probe":
        from kavi.gpu.probe import probe_reference

        result = probe_reference(request)
        Path(request["out_path"]).write_text(json.dumps(result), encoding="utf-8")
        return 0
    if args[0] == "check":
        return run_checks(request)
    from kavi.gpu.timing import bench_in_child

    return bench_in_child(request)


# --- poison
# ------------------------------------------------------------------------------------------


def fill_bytes(tensor: Any, byte: int) -> None:
    """Overwrite every byte of ``tensor``'s storage with ``byte``, whatever its dtype and
    strides."""
    import torch

    storage_bytes = tensor.untyped_storage().nbytes()
    if storage_bytes == 0:
        return
    raw = torch.tensor([], dtype=torch.uint8, device=tensor.device)  # not a wrapped empty()
    raw.set_(tensor.untyped_storage(), 0, (storage_bytes,), (1,))
    raw.fill_(byte)


@contextlib.contextmanager
def poisoned_allocations(byte: int, device: str, flood_bytes: int) -> Iterator[None]:
    """Make every tensor the candidate allocates start as ``byte`` garbage, not zeros or stale
    answers.

    The torch allocation functions are wrapped (deterministic on every device), and on CUDA a large
    block
    is flooded and freed first so the caching allocator hands out poisoned memory for anything else.
    """
    import torch

    if device == "cuda":
        flood = torch.empty(flood_bytes, dtype=torch.uint8, device=device)
        flood.fill_(byte)
        del flood
    originals: dict[str, Callable[..., Any]] = {
        name: getattr(torch, name) for name in ("empty", "empty_like", "empty_strided")
    }
    original_new_empty = torch.Tensor.new_empty

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def poisoned(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            fill_bytes(result, byte)
            return result

        return poisoned

    try:
        for name, function in originals.items():
            setattr(torch, name, wrap(function))
        torch.Tensor.new_empty = wrap(original_new_empty)  # type: ignore[method-assign]
        yield
    finally:
        for name, function in originals.items():
            setattr(torch, name, function)
        torch.Tensor.new_empty = original_new_empty  # type: ignore[method-assign]


# --- the check protocol
# ------------------------------------------------------------------------------


def _span(tensor: Any) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def overlaps(first: Any, second: Any) -> bool:
    """Whether two tensors share any byte of storage (a view of an input counts as the input)."""
    if first.device != second.device:
        return False
    a0, a1 = _span(first)
    b0, b1 = _span(second)
    return a0 < b1 and b0 < a1 and a1 > a0 and b1 > b0


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run_checks(request: dict[str, Any]) -> int:
    """Run the candidate on every case; record facts the parent turns into named checks."""
    import torch

    device = request["device"]
    cases = torch.load(request["cases_path"], weights_only=True)
    answer: dict[str, Any] = {"import_error": None, "cases": []}
    try:
        candidate = import_candidate(Path(request["kernel_path"]))
        run = candidate.run
    except Exception:
        answer["import_error"] = _short_traceback()
        torch.save(answer, request["out_path"])
        return 0
    for group in cases["groups"]:
        pristine_first = [t.to(device) for t in group["cases"][0]["inputs"]]
        buffers = [torch.empty_like(t) for t in pristine_first]  # reused across seeds: same addresses
        for case in group["cases"]:
            pristine = [t.to(device) for t in case["inputs"]]
            if [(b.shape, b.dtype) for b in buffers] != [(p.shape, p.dtype) for p in pristine]:
                buffers = [torch.empty_like(t) for t in pristine]
            flood = FLOOD_BYTES + 4 * sum(t.untyped_storage().nbytes() for t in pristine)
            runs = []
            previous = None
            for byte in POISON_BYTES:
                record, output = _one_call(run, buffers, pristine, byte, device, flood, previous)
                runs.append(record)
                previous = output
            answer["cases"].append({"id": case["id"], "runs": runs})
    torch.save(answer, request["out_path"])
    return 0


def _one_call(
    run: Callable[..., Any],
    buffers: list[Any],
    pristine: list[Any],
    byte: int,
    device: str,
    flood_bytes: int,
    previous: Any,
) -> tuple[dict[str, Any], Any]:
    import torch

    for buffer, source in zip(buffers, pristine, strict=True):
        buffer.copy_(source)
    record: dict[str, Any] = {
        "error": None,
        "plain": False,
        "type": "",
        "alias": False,
        "inputs_changed": False,
        "reused_output": False,
        "out": None,
        "device": "",
    }
    try:
        with poisoned_allocations(byte, device, flood_bytes):
            output = run(*buffers)
        _synchronize(device)
    except Exception:
        record["error"] = _short_traceback()
        return record, None
    record["type"] = f"{type(output).__module__}.{type(output).__qualname__}"
    record["plain"] = type(output) is torch.Tensor
    record["inputs_changed"] = any(
        not _same_bytes(buffer, source) for buffer, source in zip(buffers, pristine, strict=True)
    )
    if not isinstance(output, torch.Tensor):
        return record, None
    record["device"] = output.device.type
    record["alias"] = any(overlaps(output, buffer) for buffer in buffers)
    record["reused_output"] = previous is not None and overlaps(output, previous)
    if record["plain"]:
        record["out"] = output.detach().to("cpu", copy=True)
    return record, output


def _same_bytes(first: Any, second: Any) -> bool:
    from kavi.gpu.compare import bitwise_equal

    return bitwise_equal(first, second)


def _short_traceback() -> str:
    lines = traceback.format_exc().strip().splitlines()
    return "\n".join(lines[-12:])


if __name__ == "__main__":
    raise SystemExit(main())
