"""propose-kernel and bench-kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json


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
    all_kernels: Annotated[bool, typer.Option("--all", help="Benchmark every kernel with a reference.")] = False,
    size: Annotated[list[int], typer.Option(help="A size to time (repeatable; default: the spec's).")] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="Where to write the JSON results.")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Time kernels against torch on a GPU: ms, speedup with a 95% interval, roofline fraction.
    Without a GPU it says so and exits 0 without a table."""
    from kavi.gpu.bench import bench_kernel, no_gpu_reason, write_bench_json
    from kavi.workspace import find_workspace

    root = find_workspace(workspace).root
    if all_kernels == (name is not None):
        from kavi.errors import UsageError

        raise UsageError("name one kernel or pass --all")
    names = sorted(p.stem for p in (root / "kernels" / "references").glob("*.py")) if all_kernels else [str(name)]
    reason = no_gpu_reason()
    rows = (
        [] if reason else [row for kernel in names for row in bench_kernel(kernel, tuple(size) or None, workspace=root)]
    )
    target = out or root / ".kavi" / "bench" / "kernels.json"
    write_bench_json(rows, target, reason=reason)
    if json_output:
        emit_json(
            {
                "ok": True,
                "measured": bool(rows),
                "reason": reason,
                "rows": [r.to_json() for r in rows],
                "file": str(target),
            }
        )
        return
    if reason:
        console().print(f"{reason}; nothing was timed (results file: {target})")
        return
    from rich.table import Table

    table = Table("kernel", "size", "dtype", "kernel ms", "torch ms", "speedup [95% CI]", "roofline", box=None)
    for row in rows:
        data = row.to_json()
        table.add_row(
            str(data["kernel"]),
            str(data["size"]),
            str(data["dtype"]),
            f"{data['kernel_ms']:.4f}",
            f"{data['torch_ms']:.4f}",
            f"{data['speedup']:.2f} [{data['speedup_low']:.2f}, {data['speedup_high']:.2f}]",
            f"{data.get('roofline_fraction') or 0:.0%}",
        )
    console().print(table)
