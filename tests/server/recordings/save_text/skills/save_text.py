"""Save a text under a folder the caller names: only the runtime can judge that folder."""

from __future__ import annotations

from pathlib import Path

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel


class SaveTextInput(BaseModel):
    folder: str
    text: str


class SaveTextOutput(BaseModel):
    path: str


class SaveText(Skill[SaveTextInput, SaveTextOutput]):
    name = "save_text"
    side_effect = SideEffect.FILE_WRITE
    input_model = SaveTextInput
    output_model = SaveTextOutput

    def execute(self, data: SaveTextInput) -> SaveTextOutput:
        target = Path(data.folder) / "saved.txt"
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(data.text)
        return SaveTextOutput(path=target.as_posix())
