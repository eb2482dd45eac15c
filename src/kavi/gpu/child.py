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
from kavi.gpu.channel import KEY_BYTES, MAC_SUFFIX, answer_mac

POISON_BYTES = (
    0xFF,
    0x7F,
)  # all-ones is NaN in every float format; 0x7F.. is NaN in fp16, huge in fp32
# Each case is called once per poison: the two byte patterns, then random finite values (a kernel
# that reads its output buffer first and acts differently on a pattern it recognises sees noise).
POISONS: tuple[int | str, ...] = (*POISON_BYTES, "random")
FLOOD_BYTES = 64 << 20
ALIVE_BYTES = 1 << 30  # earlier outputs kept alive for the fresh-output check (oldest dropped beyond)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("probe", "check", "bench"):
        print("usage: python -m kavi.gpu.child probe|check|bench REQUEST.json", file=sys.stderr)
        return 2
    # The one-time key comes first, before any candidate code runs; it lives only in this frame.
    key = sys.stdin.buffer.read(KEY_BYTES)
    sys.stdin.close()
    _private_import_path()
    request = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    if args[0] == "probe":
        from kavi.gpu.probe import probe_reference

        result = probe_reference(request)
        Path(request["out_path"]).write_text(json.dumps(result), encoding="utf-8")
        code = 0
    elif args[0] == "check":
        code = run_checks(request)
    else:
        from kavi.gpu.timing import bench_in_child

        code = bench_in_child(request)
    out_path = Path(request["out_path"])
    if out_path.is_file():
        mac = answer_mac(key, out_path.read_bytes())
        out_path.with_name(out_path.name + MAC_SUFFIX).write_text(mac, encoding="ascii")
    return code


def _private_import_path() -> None:
    """Nothing of the working folder on the import path: the candidate is imported from its own
    private copy, and no reference file may be importable next to it."""
    here = str(Path.cwd())
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".", here)]


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


def fill_random(tensor: Any, seed: int) -> None:
    """Overwrite every element of ``tensor``'s storage with random finite values of its dtype."""
    import torch

    storage = tensor.untyped_storage()
    count = storage.nbytes() // max(tensor.element_size(), 1)
    if count == 0:
        return
    flat = torch.tensor([], dtype=tensor.dtype, device=tensor.device)  # not a wrapped empty()
    flat.set_(storage, 0, (count,), (1,))
    generator = torch.Generator(device=tensor.device).manual_seed(seed)
    if tensor.is_floating_point():
        values = torch.rand((count,), generator=generator, device=tensor.device, dtype=torch.float32)
        flat.copy_((values * 2 - 1) * 1e3)
    elif tensor.dtype == torch.bool:
        flat.copy_(torch.randint(0, 2, (count,), generator=generator, device=tensor.device).bool())
    else:
        flat.copy_(torch.randint(0, 100, (count,), generator=generator, device=tensor.device))


def poison(tensor: Any, how: int | str, seed: int) -> None:
    """A byte pattern (an int) or random finite values (``"random"``)."""
    if how == "random":
        fill_random(tensor, seed)
    else:
        fill_bytes(tensor, int(how))


@contextlib.contextmanager
def poisoned_allocations(byte: int | str, device: str, flood_bytes: int, seed: int = 0) -> Iterator[None]:
    """Make every tensor the candidate allocates start as ``byte`` garbage, not zeros or stale
    answers.

    The torch allocation functions are wrapped (deterministic on every device), and on CUDA a large
    block
    is flooded and freed first so the caching allocator hands out poisoned memory for anything else.
    """
    import torch

    if device == "cuda":
        flood = torch.empty(flood_bytes, dtype=torch.uint8, device=device)
        poison(flood, byte, seed)
        del flood
    originals: dict[str, Callable[..., Any]] = {
        name: getattr(torch, name) for name in ("empty", "empty_like", "empty_strided")
    }
    original_new_empty = torch.Tensor.new_empty

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def poisoned(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            poison(result, byte, seed)
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
    alive: list[Any] = []  # every earlier output, kept alive: new outputs must not overlap any
    calls = 0
    for group in cases["groups"]:
        buffers: list[Any] = []
        key: list[Any] = []
        for case in group["cases"]:
            pristine = [t.to(device) for t in case["inputs"]]
            layout = case.get("layout", "contiguous")
            wanted = [(p.shape, p.dtype, layout) for p in pristine]
            if key != wanted:  # reused across seeds otherwise: same addresses
                buffers = [input_buffer(p, layout, calls) for p in pristine]
                key = wanted
            flood = FLOOD_BYTES + 4 * sum(t.untyped_storage().nbytes() for t in pristine)
            runs = []
            for how in POISONS:
                calls += 1
                record, output = _one_call(run, buffers, pristine, how, device, flood, alive, calls)
                runs.append(record)
                if output is not None:
                    _keep_alive(alive, output)
            answer["cases"].append({"id": case["id"], "runs": runs})
    torch.save(answer, request["out_path"])
    return 0


def input_buffer(source: Any, layout: str, seed: int) -> Any:
    """A buffer for one input: contiguous, or (``strided``) every other element of a twice-as-wide
    allocation whose gaps hold random values, so a kernel that ignores strides reads noise."""
    import torch

    if layout != "strided" or source.dim() == 0 or source.numel() <= 1:
        return torch.empty_like(source, memory_format=torch.contiguous_format)
    shape = (*source.shape[:-1], 2 * source.shape[-1])
    base = torch.empty(shape, dtype=source.dtype, device=source.device)
    fill_random(base, seed)
    return base[..., ::2]


def _keep_alive(alive: list[Any], output: Any) -> None:
    alive.append(output)
    while len(alive) > 1 and sum(t.untyped_storage().nbytes() for t in alive) > ALIVE_BYTES:
        alive.pop(0)


def _one_call(
    run: Callable[..., Any],
    buffers: list[Any],
    pristine: list[Any],
    byte: int | str,
    device: str,
    flood_bytes: int,
    alive: list[Any],
    seed: int,
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
        with poisoned_allocations(byte, device, flood_bytes, seed):
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
    record["reused_output"] = any(overlaps(output, earlier) for earlier in alive)
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
