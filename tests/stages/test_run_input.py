"""What the ledger keeps of a run's input: a sha256, the size and a bounded preview by default, all of it
when ``[run] record_input = "full"``; ``--input-file -`` reads standard input."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from kavi.stages.run import INPUT_PREVIEW_CHARS
from tests.support import REPO, run_cli


@pytest.fixture
def adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace holding this repository's TRUSTED skills, adopted from its lock (no verification)."""
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("kavi.toml", "kavi.lock"):
        shutil.copy2(REPO / name, root / name)
    for folder in ("skills", "kernels"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "references"))
    result = run_cli("init", str(root), "--json")
    assert result.code == 0, result.stdout + result.stderr
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    return root


def _executions(root: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(root / ".kavi" / "ledger.db") as conn:
        return list(conn.execute("SELECT input_json, input_sha256, input_size FROM executions ORDER BY created_at"))


def test_a_large_input_is_kept_as_hash_size_and_preview(adopted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = {"text": "word " * 40_000}
    canonical = json.dumps(payload, sort_keys=True)
    before = (adopted / ".kavi" / "ledger.db").stat().st_size
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(payload).encode())))
    ran = run_cli("run-skill", "word_count", "--input-file", "-")
    assert ran.code == 0, ran.stderr
    assert ran.json()["output"] == {"count": 40_000}
    [(kept, digest, size)] = _executions(adopted)
    assert kept == canonical[:INPUT_PREVIEW_CHARS]
    assert digest == hashlib.sha256(canonical.encode()).hexdigest() and size == len(canonical)
    assert (adopted / ".kavi" / "ledger.db").stat().st_size - before < len(canonical) // 2


def test_full_inputs_are_kept_when_configured(adopted: Path) -> None:
    config = adopted / "kavi.toml"
    config.write_text(config.read_text().replace("[run]\n", '[run]\nrecord_input = "full"\n'))
    payload = {"text": "word " * 1_000}
    assert run_cli("run-skill", "word_count", "--json", json.dumps(payload)).code == 0
    [(kept, digest, size)] = _executions(adopted)
    assert kept == json.dumps(payload, sort_keys=True) and size == len(kept)
    assert digest == hashlib.sha256(kept.encode()).hexdigest()

    config.write_text(config.read_text().replace('record_input = "full"', 'record_input = "everything"'))
    refused = run_cli("run-skill", "word_count", "--json", "{}")
    assert refused.code == 1 and "record_input" in refused.stderr
