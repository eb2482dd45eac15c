"""Finding, creating and configuring a workspace: any folder holding ``kavi.toml``.

Like git, commands walk up from the current directory to find one; ``--workspace`` or ``KAVI_WORKSPACE``
name one explicitly. The workspace layout is fixed: ``skills/`` and ``kernels/`` hold TRUSTED code only,
``.kavi/`` holds the ledger and the artifact store.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kavi.errors import ConfigError, WorkspaceError

if TYPE_CHECKING:
    from kavi.config import Config

CONFIG_FILE = "kavi.toml"
LOCK_FILE = "kavi.lock"
STATE_DIR = ".kavi"
ENV_WORKSPACE = "KAVI_WORKSPACE"
DEFAULT_LEDGER_LINE = 'url = ".kavi/ledger.db"'

DEFAULT_CONFIG = """\
# kavi workspace settings. Every key is optional; these are the defaults.

[ledger]
# A SQLite file relative to this folder, or a database URL (postgresql://...).
url = ".kavi/ledger.db"

[build]
# Which builder `kavi build-skill` uses when --builder is not given: manual, replay, claude-code, openai.
builder = "manual"

[verify]
# Wall-clock limit for each gate that runs code, in seconds.
timeout_s = 120

[run]
# Wall-clock limit for one `kavi run-skill`, in seconds.
timeout_s = 60
# What the ledger keeps of each run's input: "preview" (its sha256, size and the first bytes) or "full".
record_input = "preview"

[isolation]
# Refuse to run untrusted code below full OS isolation (bubblewrap).
require = false
"""

# Every table and key kavi.toml may hold, for the stdlib-only check that runs before every command (the
# pydantic model in kavi.config says the same with types; a test keeps the two in step). ``build.options``
# holds one free-form table per builder, checked by the builder's own options model.
KNOWN_SETTINGS: dict[str, frozenset[str]] = {
    "ledger": frozenset({"url"}),
    "build": frozenset({"builder", "options"}),
    "verify": frozenset({"timeout_s"}),
    "run": frozenset({"timeout_s", "record_input"}),
    "isolation": frozenset({"require"}),
}


def check_known_settings(data: dict[str, Any], path: Path) -> None:
    """Refuse an unknown table or key, so a typo never silently changes nothing (every command, even the
    stdlib-only `run-skill`)."""
    for section, body in data.items():
        if section not in KNOWN_SETTINGS:
            known = ", ".join(f"[{name}]" for name in KNOWN_SETTINGS)
            raise ConfigError(f"{path}: unknown table [{section}]", hint=f"kavi.toml knows {known}")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}])")
        for key in body:
            if key not in KNOWN_SETTINGS[section]:
                known = ", ".join(sorted(KNOWN_SETTINGS[section]))
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]", hint=f"[{section}] knows {known}")


@dataclass
class Workspace:
    """A workspace root. The validated config loads on first use: the hot `run-skill` path only needs
    :meth:`raw_setting` and must not pay for pydantic."""

    root: Path
    _config: Config | None = field(default=None, repr=False)
    _raw: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from kavi.config import load_config

            self._config = load_config(self.root)
        return self._config

    def raw_setting(self, section: str, key: str, default: Any) -> Any:
        """One value of kavi.toml, unvalidated beyond TOML syntax (for the stdlib-only fast path)."""
        return self.raw_settings().get(section, {}).get(key, default)

    def raw_settings(self) -> dict[str, Any]:
        """kavi.toml as TOML, its tables and keys checked (read once: the hot run path asks several times)."""
        if self._raw is None:
            path = self.root / CONFIG_FILE
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from None
            check_known_settings(raw, path)
            self._raw = raw
        return self._raw

    def with_ledger(self, url: str) -> Workspace:
        """This workspace (its files, artifact store and settings) seen through another ledger: the audit of a
        copy made by `kavi ledger migrate` before kavi.toml points at it."""
        settings = self.raw_settings()
        return Workspace(self.root, _raw={**settings, "ledger": {**settings.get("ledger", {}), "url": url}})

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def skills_dir(self) -> Path:
        return self.root / "skills"

    @property
    def kernels_dir(self) -> Path:
        return self.root / "kernels"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def ledger_url(self) -> str:
        """A SQLAlchemy URL; a relative SQLite path is taken relative to the workspace root."""
        url = str(self.raw_setting("ledger", "url", ".kavi/ledger.db"))
        if "://" in url:
            return url
        return f"sqlite:///{(self.root / url).resolve()}"

    @property
    def ledger_path(self) -> Path | None:
        """The SQLite file, or None when the ledger is a server."""
        url = str(self.raw_setting("ledger", "url", ".kavi/ledger.db"))
        return None if "://" in url else (self.root / url).resolve()

    def has_ledger(self) -> bool:
        """Whether the ledger exists yet (a server ledger is taken to exist: only SQLite can be absent)."""
        path = self.ledger_path
        return path is None or path.is_file()

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_FILE

    def runs_from_lock(self) -> bool:
        """A clone that holds kavi.lock but no ledger yet: read-only commands answer from the lock, and a
        command that writes the ledger waits for `kavi init` to adopt it."""
        return not self.has_ledger() and self.lock_path.is_file()


def find_workspace(explicit: Path | str | None = None, *, start: Path | None = None) -> Workspace:
    """The workspace named explicitly, by ``KAVI_WORKSPACE``, or the nearest one above ``start``."""
    named = explicit or os.environ.get(ENV_WORKSPACE)
    if named:
        root = Path(named).expanduser().resolve()
        if not (root / CONFIG_FILE).is_file():
            raise WorkspaceError(f"{root} is not a kavi workspace (no {CONFIG_FILE})", hint="run `kavi init` there")
        return _checked(Workspace(root))
    if os.environ.get("KAVI_TESTING") == "1" and start is None:
        raise WorkspaceError("under test, a workspace must be named explicitly (KAVI_WORKSPACE or --workspace)")
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return _checked(Workspace(candidate))
    raise WorkspaceError("no kavi workspace here or above", hint="run `kavi init` to make this folder one")


def _checked(workspace: Workspace) -> Workspace:
    """Every command finds its workspace here: a malformed kavi.toml or an unknown key fails them all."""
    workspace.raw_settings()
    return workspace


def init_workspace(root: Path, *, ledger_url: str | None = None) -> tuple[Workspace, bool]:
    """Create the layout (idempotent). Returns the workspace and whether kavi.toml was new.

    ``ledger_url`` goes into a new kavi.toml's ``[ledger] url`` (a server ledger such as
    ``postgresql://kavi@db/team``); an existing kavi.toml that names another ledger is refused, not rewritten.
    """
    if ledger_url is not None:
        from kavi.ledger.connection import backend_of

        backend_of(ledger_url if "://" in ledger_url else f"sqlite:///{ledger_url}")  # refuses other schemes
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / CONFIG_FILE
    created = not config_path.exists()
    if created:
        text = DEFAULT_CONFIG
        if ledger_url is not None:
            text = text.replace(DEFAULT_LEDGER_LINE, f"url = {json.dumps(ledger_url)}", 1)
        config_path.write_text(text, encoding="utf-8")
    workspace = Workspace(root)
    if ledger_url is not None and not created and workspace.raw_setting("ledger", "url", None) != ledger_url:
        raise ConfigError(
            f"{config_path} already names another ledger",
            hint="edit [ledger] url there, or copy the ledger with `kavi ledger migrate --to URL`",
        )
    _ = workspace.config  # validate now, so a broken kavi.toml is reported by `init`
    for folder in (workspace.skills_dir, workspace.kernels_dir, workspace.artifacts_dir, workspace.cache_dir):
        folder.mkdir(parents=True, exist_ok=True)
    ignore = workspace.state_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# kavi's ledger and artifact store: local state, never committed\n*\n", encoding="utf-8")
    return workspace, created
