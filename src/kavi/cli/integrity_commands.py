"""audit, verify-lock, attest, keygen, verify-attestation and doctor: thin commands over kavi.integrity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import aligned_rows, console, emit_json, plural
from kavi.errors import UsageError


@app.command()
def audit(
    quick: Annotated[bool, typer.Option("--quick", help="Only the chain head, the counts and skills/.")] = False,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Recompute the hash chain and check every artifact, row, installed file and kavi.lock against it.

    Exits 1 and names each row, event or file that disagrees."""
    from kavi.integrity.audit import audit_workspace
    from kavi.workspace import find_workspace

    report = audit_workspace(find_workspace(workspace), quick=quick)
    if json_output:
        emit_json(report.to_json())
    else:
        out = console()
        counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
        mode = "quick audit" if quick else "audit"
        verdict = "[green]clean[/green]" if report.ok else f"[red]{plural(len(report.findings), 'finding')}[/red]"
        out.print(f"{mode}: {verdict} · head {report.head[:12]} · {counts} · {report.duration_s:.2f} s")
        for finding in report.findings:
            out.print(f"  {finding.line()}", markup=False)
        for check, more in report.truncated.items():
            out.print(f"  [{check}] ... and {more} more", markup=False)
        if {f.check for f in report.findings} & {"installed", "lock"}:
            out.print(
                "fix: if the ledger is right, `kavi verify-lock --write` reinstalls skills/ and rewrites kavi.lock",
                markup=False,
            )
    if not report.ok:
        raise typer.Exit(1)


@app.command("verify-lock")
def verify_lock_command(
    regate: Annotated[
        bool, typer.Option("--regate", help="Run every gate again on each installed locked skill.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write", help="First reinstall skills/ and rewrite kavi.lock from the ledger.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check skills/ against kavi.lock (no ledger needed, as in CI), and the lock against the ledger if any."""
    from kavi.stages.install import settle
    from kavi.stages.regate import verify_lock_and_regate
    from kavi.workspace import find_workspace

    ws = find_workspace(workspace)
    if write:
        from kavi.stages.common import Forge

        forge = Forge.open(ws)
        try:
            settle(forge)
        finally:
            forge.close()
    report = verify_lock_and_regate(ws, regate=regate)
    if json_output:
        emit_json(report.to_json())
    else:
        out = console()
        against = "files and ledger" if report.ledger_checked else "files (no ledger here)"
        verdict = "[green]agrees[/green]" if report.ok else f"[red]{plural(len(report.problems), 'problem')}[/red]"
        out.print(f"kavi.lock ({plural(report.entries, 'entry', 'entries')}) vs {against}: {verdict}")
        for where, message in report.problems:
            out.print(f"  {where}: {message}", markup=False)
        for result in report.regate:
            gates = ", ".join(
                f"{g['gate']} {g['status']}" + (f" ({g['summary']})" if g["status"] == "skipped" else "")
                for g in result["gates"]
            ) or f"not re-gated: {result.get('not_gated')}"
            out.print(f"  regate {result['name']} v{result['version']}: {gates}", markup=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def attest(
    name: Annotated[str, typer.Argument(help="The skill name.")],
    version: Annotated[int | None, typer.Option(help="The TRUSTED version (default: the latest).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    sign: Annotated[
        Path | None, typer.Option("--sign", help="An ed25519 private key (PEM): write a DSSE envelope.")
    ] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write an in-toto Statement v1 with SLSA provenance v1 for a TRUSTED version (signed with --sign)."""
    from kavi.artifacts import write_atomic
    from kavi.integrity.attest import make_statement, sign_envelope
    from kavi.workspace import find_workspace

    statement = make_statement(find_workspace(workspace), name, version)
    document = sign_envelope(statement, sign) if sign is not None else statement
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if out is not None:
        write_atomic(out, text.encode("utf-8"))
    if json_output:
        path = str(out) if out is not None else None
        emit_json({"ok": True, "name": name, "signed": sign is not None, "path": path, "attestation": document})
    elif out is None:
        typer.echo(text, nl=False)
    else:
        console(stderr=True).print(f"wrote {'a signed ' if sign else 'an unsigned '}attestation to {out}")


@app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", help="PREFIX: writes PREFIX.key (mode 0600) and PREFIX.pub.")],
    json_output: JsonOption = False,
) -> None:
    """Make an ed25519 key pair for `kavi attest --sign`."""
    from kavi.integrity.attest import keygen as make_keys

    private, public = make_keys(out)
    if json_output:
        emit_json({"ok": True, "private_key": str(private), "public_key": str(public)})
        return
    console().print(f"private key {private} (keep it secret), public key {public}")


@app.command("verify-attestation")
def verify_attestation_command(
    file: Annotated[Path, typer.Argument(help="The attestation (statement or DSSE envelope).")],
    key: Annotated[Path | None, typer.Option("--key", help="The ed25519 public key (PEM) it was signed with.")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check an attestation's signature and re-check every digest against the workspace and its ledger."""
    from kavi.integrity.attest import verify_attestation
    from kavi.workspace import find_workspace

    if not file.is_file():
        raise UsageError(f"{file} is not a file")
    check = verify_attestation(find_workspace(workspace), file, key)
    if json_output:
        emit_json(check.to_json())
    else:
        out = console()
        verdict = "[green]verified[/green]" if check.ok else f"[red]{plural(len(check.problems), 'problem')}[/red]"
        signature = {True: "signature ok", False: "signature BAD", None: "unsigned"}[check.signature_ok]
        out.print(f"{check.name} v{check.version}: {verdict} ({signature})")
        for problem in check.problems:
            out.print(f"  {problem}", markup=False)
    if not check.ok:
        raise typer.Exit(1)


@app.command()
def doctor(workspace: WorkspaceOption = None, json_output: JsonOption = False) -> None:
    """Check the workspace, ledger, audit, lock, toolchain and builders; one line each, with the fix."""
    from kavi.integrity.doctor import FAIL, run_doctor

    checks = run_doctor(workspace)
    failed = any(c.status == FAIL for c in checks)
    if json_output:
        emit_json({"ok": not failed, "checks": [c.__dict__ for c in checks]})
    else:
        style = {"ok": "green", "warn": "yellow", "fail": "red"}
        aligned_rows(
            [
                (
                    f"[{style[c.status]}]{c.status:>4}[/{style[c.status]}]",
                    c.name,
                    c.detail + (f" → {c.fix}" if c.status != "ok" and c.fix else ""),
                )
                for c in checks
            ]
        )
    if failed:
        raise typer.Exit(1)
