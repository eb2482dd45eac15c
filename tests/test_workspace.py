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
