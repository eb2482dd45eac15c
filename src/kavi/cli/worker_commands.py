"""worker and wait: work spread over machines through the job queue in a PostgreSQL ledger; and the
`--queue` answer the stage commands share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json, escape

if TYPE_CHECKING:
    from pathlib import Path

    from kavi.workers.queue import Enqueued

QueueOption = Annotated[
    bool,
    typer.Option(
        "--queue",
        help="Do not run it here: queue it for `kavi worker` (needs a PostgreSQL ledger) and print the job id to"
        " follow with `kavi wait JOB`.",
    ),
]


def enqueue_command(
    workspace: Path | None, stage: str, reference: str, options: dict[str, Any], json_output: bool
) -> None:
    """What `verify-skill --queue`, `build-skill --queue` and `forge --queue` do: queue, print the job."""
    from kavi.stages.common import Forge
    from kavi.workers.queue import enqueue

    with Forge.opened(workspace) as forge:
        queued = enqueue(forge, stage, reference, options)
    _print_enqueued(queued, json_output)


def _print_enqueued(queued: Enqueued, json_output: bool) -> None:
    if json_output:
        emit_json({"ok": True, **queued.__dict__})
        return
    console().print(
        f"Queued {queued.task} of {escape(queued.name)} ({queued.proposal_id}) as job {queued.job_id} on the"
        f" {queued.queue} queue. Follow it: `kavi wait {queued.job_id}`"
    )


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to take: builds, gates, gpu.")] = "builds,gates",
    name: Annotated[
        str | None, typer.Option(help="How the ledger names this worker (default worker@host:pid).")
    ] = None,
    heartbeat: Annotated[float, typer.Option(help="Seconds between this worker's heartbeats.")] = 10.0,
    stalled_after: Annotated[
        float, typer.Option(help="A job whose worker sent no heartbeat for this long is given to another worker.")
    ] = 30.0,
    workspace: WorkspaceOption = None,
) -> None:
    """Take jobs from the ledger's queue and run them here, until stopped (Ctrl-C ends after the current job).

    Runs on any machine with kavi and a workspace whose kavi.toml names the shared PostgreSQL ledger; this
    machine's workspace folder is only a cache. `gpu` starts one worker per GPU (CUDA_VISIBLE_DEVICES)."""
    from kavi.stages.common import Forge
    from kavi.workers.host import this_host
    from kavi.workers.queue import require_queue
    from kavi.workers.runner import check_timing, plan_worker, run_worker

    check_timing(heartbeat, stalled_after)
    host = this_host(name)
    plan = plan_worker([part.strip() for part in queues.split(",") if part.strip()], host)
    out = console(stderr=True)
    with Forge.opened(workspace) as forge:
        require_queue(forge.ledger)
        for note in plan.notes:
            out.print(f"[yellow]note:[/yellow] {escape(note)}")
        for gpu in plan.gpu_children:
            out.print(f"GPU {gpu}: a worker of its own takes the gpu queue")
        run_worker(
            forge.workspace.root,
            forge.ledger,
            plan,
            host,
            heartbeat_s=heartbeat,
            stalled_after_s=stalled_after,
            say=out.print,
        )


@app.command()
def wait(
    job: Annotated[int, typer.Argument(help="The job id that `--queue` printed.")],
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds (default: never).")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Follow a queued job: each gate as its worker reports it, then the result, as the local command shows it."""
    from kavi.stages.common import Forge
    from kavi.workers.queue import follow

    out = console()

    def show(line: Any) -> None:
        if not json_output and line.kind != "result":  # the result is summed up below
            out.print(f"[dim]{escape(line.worker)}[/dim] {escape(line.kind)}: {escape(line.message)}")

    def queued(state: Any) -> None:
        if not json_output:
            out.print(f"Job {job} waits on the {state.queue} queue for a worker (`kavi worker --queues {state.queue}`)")

    with Forge.opened(workspace) as forge:
        followed = follow(forge.ledger, job, show, on_queued=queued, timeout_s=timeout)
    state = followed.state
    if json_output:
        emit_json(
            {
                "ok": followed.ok,
                "job_id": job,
                "status": state.status,
                "attempts": state.attempts,
                "result": followed.result,
                "error": followed.error,
            }
        )
    else:
        result = followed.result or {}
        said = ", ".join(
            f"{key} {result[key]}" for key in ("name", "status", "verification_id", "build_id") if result.get(key)
        )
        out.print(f"Job {job} ({state.task.removeprefix('kavi.')}) {state.status}" + (f": {said}" if said else ""))
        if followed.error:
            out.print(f"[red]error:[/red] {escape(followed.error)}")
    if not followed.ok:
        raise typer.Exit(1)
