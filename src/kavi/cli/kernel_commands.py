"""propose-kernel and bench-kernel."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json

if TYPE_CHECKING:
    from kavi.gpu.bench import BenchRow


@app.command("propose-kernel")
def propose_kernel_command(
    name: Annotated[str, typer.Option(help="snake_case kernel name; also kernels/NAME.py.")],
    reference: Annotated[Path, typer.Option(help="A PyTorch reference file: reference(), make_inputs(), sizes.")],
    desc: Annotated[str, typer.Option("--desc", help="What the kernel computes, for the builder.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Propose a GPU kernel: its reference file is checked (not degenerate) and frozen as the spec."""
    from kavi.stages.common import Forge
    from kavi.stages.propose import propose_kernel

    with Forge.opened(workspace) as forge:
        proposed = propose_kernel(forge, name=name, description=desc, reference=reference)
    if json_output:
        emit_json({"ok": True, **proposed.__dict__})
        return
    console().print(
        f"Proposed kernel [bold]{proposed.name}[/bold]: {proposed.proposal_id} "
        f"(spec {proposed.spec_sha256[:12]}). Next: `kavi build-skill {proposed.proposal_id}`"
    )


@app.command("bench-kernel")
def bench_kernel_command(
    name: Annotated[str | None, typer.Argument(help="The kernel (kernels/NAME.py); omit with --all.")] = None,
    all_kernels: Annotated[
        bool, typer.Option("--all", help="Every installed kernel with a reference in kernels/references/.")
    ] = False,
    size: Annotated[list[int], typer.Option(help="A size to time (repeatable; default: the spec's).")] = [],  # noqa: B006
    dtype: Annotated[list[str], typer.Option(help="A dtype to time (repeatable; default: the spec's).")] = [],  # noqa: B006
    compile_baseline: Annotated[
        bool, typer.Option("--compile/--no-compile", help="Also time torch.compile of the reference (slower).")
    ] = True,
    out: Annotated[Path | None, typer.Option(help="Where to write the JSON results.")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Time kernels against torch on a GPU: ms, speedup with a 95% interval, roofline fraction.
    Without a GPU it says so and exits 0 without a table. With --all the results file is rewritten after
    each kernel, so a run stopped part-way keeps what it measured."""
    from kavi.gpu.bench import bench_kernel, benchable_kernels, no_gpu_reason, write_bench_json
    from kavi.workspace import find_workspace

    root = find_workspace(workspace).root
    if all_kernels == (name is not None):
        from kavi.errors import UsageError

        raise UsageError("name one kernel or pass --all")
    names, missing = benchable_kernels(root) if all_kernels else ([str(name)], [])
    notes = [f"{kernel}: not benchmarked: no installed kernels/{kernel}.py (not TRUSTED yet)" for kernel in missing]
    reason = no_gpu_reason()
    target = out or root / ".kavi" / "bench" / "kernels.json"
    rows: list[BenchRow] = []
    for kernel in [] if reason else names:
        rows += bench_kernel(
            kernel, tuple(size) or None, dtypes=tuple(dtype) or None, workspace=root, compile_baseline=compile_baseline
        )
        write_bench_json(rows, target, notes=notes)
    write_bench_json(rows, target, reason=reason, notes=notes)
    if json_output:
        data = [r.to_json() for r in rows]
        emit_json(
            {"ok": True, "measured": bool(rows), "reason": reason, "rows": data, "notes": notes, "file": str(target)}
        )
        return
    if reason:
        console().print(f"{reason}; nothing was timed (results file: {target})")
        return
    _print_table(rows, notes)


def _print_table(rows: list[BenchRow], notes: list[str]) -> None:
    from rich.table import Table

    table = Table("kernel", "size", "dtype", "kernel ms", "torch ms", "speedup [95% CI]", "roofline", box=None)
    for row in rows:
        flag = "" if row.trustworthy else " (untrusted)"
        table.add_row(
            row.kernel,
            str(row.to_json()["size"]),
            row.dtype,
            f"{row.kernel_ms:.4f}",
            f"{row.torch_ms:.4f}",
            f"{row.speedup:.2f} [{row.speedup_low:.2f}, {row.speedup_high:.2f}]{flag}",
            "-" if row.roofline_fraction is None else f"{row.roofline_fraction:.0%}",
        )
    console().print(table)
    for note in notes:
        console().print(note, markup=False)
