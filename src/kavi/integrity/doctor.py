"""`kavi doctor`: one line per check of the workspace, ledger, audit, lock, toolchain and builders.

A check is ``ok``, ``warn`` (something optional is missing: a GPU, the claude CLI, bubblewrap) or ``fail``
(something kavi needs is broken); every non-ok check carries the fix. Doctor passes when nothing fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kavi.errors import KaviError
from kavi.workspace import Workspace, find_workspace

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _isolation_check() -> Check:
    """The level untrusted code will run under here and every isolation layer this host has, from the
    executor's own probes (bwrap must work, Landlock must answer, not merely be installed); a missing
    layer is named with the reason."""
    from kavi.sandbox.executor import LAYERS, host_layers, probe_isolation

    report = probe_isolation()
    host = host_layers()
    have = [str(layer) for layer in LAYERS if host[layer] is None]
    missing = [f"{layer} ({why})" for layer, why in host.items() if why is not None]
    detail = f"{report.level}: layers {', '.join(have) or 'none'}"
    if report.level == "full" and not missing:
        return Check("isolation", OK, detail)
    if missing:
        detail += "; missing: " + "; ".join(missing)
    if report.level != "full":
        why = f"forced by KAVI_ISOLATION={report.forced}" if report.forced else report.bwrap_error
        detail += f"; this run level has no namespaces ({why or 'bubblewrap is not installed'})"
    return Check(
        "isolation",
        WARN,
        detail,
        "install bubblewrap (Debian: apt-get install bubblewrap), use a kernel with Landlock, or set"
        " [isolation] require = true to refuse runs that miss a layer this host has",
    )


def run_doctor(explicit: Path | str | None = None) -> list[Check]:
    checks: list[Check] = []
    try:
        workspace = find_workspace(explicit)
    except KaviError as exc:
        checks.append(Check("workspace", FAIL, exc.message, "run `kavi init` in your project folder"))
        workspace = None
    if workspace is not None:
        checks.append(Check("workspace", OK, str(workspace.root)))
        checks += _ledger_checks(workspace)
    checks += toolchain_checks(workspace.root if workspace else Path.cwd())
    checks += builder_checks(workspace)
    return checks


def _ledger_checks(workspace: Workspace) -> list[Check]:
    from kavi.ledger.connection import backend_of, safe_url
    from kavi.ledger.migrations import MIGRATIONS
    from kavi.ledger.store import Ledger

    path = workspace.ledger_path
    if workspace.runs_from_lock():  # a fresh clone: it runs what the lock vouches for until `kavi init`
        return [
            Check(
                "ledger", WARN, f"no ledger yet; running from {workspace.lock_path.name}", "run `kavi init` to adopt it"
            ),
            _lock_check(workspace),
        ]
    if path is not None and not path.is_file():
        return [Check("ledger", FAIL, f"no ledger at {path}", "run `kavi init` to create it")]
    try:
        ledger = Ledger.open(workspace.ledger_url, create=False)
        try:
            applied = ledger.schema_version()
        finally:
            ledger.close()
    except KaviError as exc:
        return [Check("ledger", FAIL, exc.message, "check [ledger] url in kavi.toml")]
    known = [name for name, _ in MIGRATIONS]
    url = workspace.ledger_url
    checks = [Check("ledger", OK, f"{backend_of(url)} at {safe_url(url)}")]
    if applied[: len(known)] == sorted(known) or set(known) <= set(applied):
        unknown = sorted(set(applied) - set(known))
        if unknown:
            checks.append(
                Check("schema", FAIL, f"the ledger has migrations this kavi does not know: {unknown}", "upgrade kavi")
            )
        else:
            checks.append(Check("schema", OK, f"{_count(len(applied), 'migration')}, latest {known[-1]}"))
    else:
        checks.append(Check("schema", FAIL, f"migrations applied: {applied}", "run any kavi command to migrate"))
    from kavi.integrity.audit import audit_workspace

    report = audit_workspace(workspace, quick=True)
    if report.ok:
        checks.append(Check("audit", OK, f"chain head {report.head[:12]}, {report.counts['events']} events (quick)"))
    else:
        first = report.findings[0].line()
        checks.append(
            Check(
                "audit", FAIL, f"{_count(len(report.findings), 'finding')}, first: {first}", "run `kavi audit` for all"
            )
        )
    checks.append(_lock_check(workspace))
    return checks


def _count(count: int, singular: str, many: str | None = None) -> str:
    """``1 entry``, ``2 entries``: a person reads the count, not ``entr(y/ies)``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def _lock_check(workspace: Workspace) -> Check:
    from kavi.integrity.lockdata import LOCK_FILE
    from kavi.integrity.lockfile import verify_lock

    if not (workspace.root / LOCK_FILE).is_file():
        from kavi.integrity.audit import installed_expectations, open_ledger

        conn = open_ledger(workspace)
        try:
            trusted = installed_expectations(conn)
        finally:
            conn.close()
        if trusted:
            return Check(
                "lock", FAIL, f"{LOCK_FILE} is missing but skills are TRUSTED", "run `kavi verify-lock --write`"
            )
        return Check("lock", OK, f"no {LOCK_FILE} yet (nothing is TRUSTED)")
    try:
        report = verify_lock(workspace)
    except KaviError as exc:
        return Check("lock", FAIL, exc.message, "restore kavi.lock from git or `kavi verify-lock --write`")
    if report.ok:
        against = "the files and the ledger" if report.ledger_checked else "the files"
        return Check("lock", OK, f"{_count(report.entries, 'entry', 'entries')} agree with {against}")
    where, message = report.problems[0]
    return Check(
        "lock", FAIL, f"{_count(len(report.problems), 'problem')}, first: {where}: {message}", "run `kavi verify-lock`"
    )


def toolchain_checks(root: Path) -> list[Check]:
    checks = []
    for module in ("ruff", "mypy", "pytest"):
        found = importlib.util.find_spec(module) is not None
        checks.append(
            Check(
                module,
                OK if found else FAIL,
                "importable" if found else "not importable",
                f"install kavi's dependencies ({module})",
            )
        )
    checks.append(_isolation_check())
    claude = _find_claude(root)
    checks.append(
        Check("claude", OK, str(claude))
        if claude
        else Check(
            "claude",
            WARN,
            "claude CLI not found (the claude-code builder is unavailable)",
            "npm install @anthropic-ai/claude-code",
        )
    )
    checks += _gpu_checks()
    return checks


def _find_claude(root: Path) -> Path | None:
    for base in (root, Path.cwd()):
        candidate = base / "node_modules" / ".bin" / "claude"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("claude")
    return Path(found) if found else None


def _gpu_checks() -> list[Check]:
    checks = []
    for module in ("triton", "torch"):
        found = importlib.util.find_spec(module) is not None
        checks.append(
            Check(
                module,
                OK if found else WARN,
                "importable" if found else "not installed (GPU kernels unavailable)",
                "uv sync --extra gpu",
            )
        )
    if importlib.util.find_spec("torch") is not None:
        try:
            torch: Any = importlib.import_module("torch")
            cuda = bool(torch.cuda.is_available())
        except Exception as exc:  # a broken torch install is a warning, never a doctor crash
            checks.append(Check("cuda", WARN, f"torch failed to import: {exc}", "reinstall torch"))
            return checks
        checks.append(
            Check(
                "cuda",
                OK if cuda else WARN,
                "a CUDA device is available" if cuda else "no CUDA device",
                "run on a GPU machine for kernels",
            )
        )
    return checks


def builder_checks(workspace: Workspace | None = None) -> list[Check]:
    """Each builder as `kavi build-skill` would create it here: kavi.toml's options, KAVI_* overrides, and a
    brief probe of a configured server."""
    from kavi.builders.availability import builder_availability

    try:
        rows = builder_availability(workspace.config.build.options if workspace else None)
    except KaviError as exc:
        return [Check("builders", FAIL, exc.message, "fix kavi.toml or uninstall the broken builder plugin")]
    return [
        Check(
            f"builder {row['name']}",
            OK if row["available"] else WARN,
            row["detail"] or "available",
            f"configure [build.options.{row['name']}] in kavi.toml",
        )
        for row in rows
    ]
