"""kavi.toml's stdlib key check (every command, the fast run path included) and the pydantic model agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.config import Config, load_config
from kavi.errors import ConfigError
from kavi.workspace import DEFAULT_CONFIG, KNOWN_SETTINGS, find_workspace, init_workspace


def test_the_known_settings_table_matches_the_config_model() -> None:
    model = {name: frozenset(field.annotation.model_fields) for name, field in Config.model_fields.items()}  # type: ignore[union-attr]
    assert model == KNOWN_SETTINGS


def test_the_default_config_uses_only_known_settings(tmp_path: Path) -> None:
    workspace, _ = init_workspace(tmp_path / "ws")
    assert (workspace.root / "kavi.toml").read_text() == DEFAULT_CONFIG
    assert find_workspace(workspace.root).raw_settings()["run"]["record_input"] == "preview"


def test_a_wrong_value_is_said_in_kavis_words(tmp_path: Path) -> None:
    workspace, _ = init_workspace(tmp_path / "ws")
    config = workspace.root / "kavi.toml"
    config.write_text(config.read_text().replace("timeout_s = 120", 'timeout_s = "soon"'))
    with pytest.raises(ConfigError) as caught:
        load_config(workspace.root)
    assert "verify.timeout_s: must be a number" in caught.value.message
    assert "Input should be" not in caught.value.message


def test_init_with_a_server_ledger_writes_it_and_every_command_finds_it(tmp_path: Path, postgres_url: str) -> None:
    from kavi.errors import LedgerError
    from tests.support import run_cli

    root = tmp_path / "team"
    made = run_cli("init", str(root), "--ledger", postgres_url, "--json")
    assert made.code == 0, made.stdout + made.stderr
    workspace = find_workspace(root)
    assert workspace.ledger_url == postgres_url and workspace.ledger_path is None
    status = run_cli("status", "--json", "--workspace", str(root))
    assert status.code == 0 and status.json()["ledger"] == "postgresql"
    assert run_cli("audit", "--json", "--workspace", str(root)).json()["ok"] is True
    again = run_cli("init", str(root), "--ledger", "postgresql://someone@elsewhere/other")
    assert again.code == 1 and "already names another ledger" in again.stderr
    with pytest.raises(LedgerError, match="unsupported ledger URL"):
        init_workspace(tmp_path / "other", ledger_url="mysql://u@h/db")
    assert not (tmp_path / "other").exists()


def test_a_server_database_without_kavis_tables_names_kavi_init(tmp_path: Path, postgres_url: str) -> None:
    from tests.support import run_cli

    root = tmp_path / "team"
    root.mkdir()
    (root / "kavi.toml").write_text(f'[ledger]\nurl = "{postgres_url}"\n')
    ran = run_cli("run-skill", "word_count", "--json", "{}", "--workspace", str(root))
    assert ran.code == 1 and "kavi init" in ran.stderr
