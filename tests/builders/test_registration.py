"""The two LLM builders are registered as entry points and keep start-up light."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from kavi.builders.base import BuilderOptions
from kavi.builders.claude_code import ClaudeCodeBuilder
from kavi.builders.openai_compat import OpenAIBuilder


@pytest.mark.parametrize(("name", "cls"), [("claude-code", ClaudeCodeBuilder), ("openai", OpenAIBuilder)])
def test_entry_point_loads_the_builder(name: str, cls: type) -> None:
    found = {ep.name: ep for ep in entry_points(group="kavi.builders")}
    assert name in found, "run `uv sync` so the entry points of pyproject.toml are installed"
    loaded = found[name].load()
    assert loaded is cls and loaded.name == name
    assert issubclass(loaded.options_model, BuilderOptions)
    assert loaded.options_model.model_config.get("extra") == "forbid"
    assert callable(loaded.available) and callable(loaded.build)


def test_importing_the_builders_does_not_import_the_sdk() -> None:
    code = (
        "import sys, kavi.builders.openai_compat, kavi.builders.claude_code, kavi.research; "
        "print(sorted(m for m in ('openai', 'tenacity', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
