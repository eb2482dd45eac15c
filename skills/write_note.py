"""Write a markdown note under notes/, named after a slug of its title; never overwrite a note."""

from __future__ import annotations

import re
from pathlib import Path

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel

NOTES_DIR = "notes"
MAX_SLUG = 60


class WriteNoteInput(BaseModel):
    title: str
    body: str


class WriteNoteOutput(BaseModel):
    path: str


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:MAX_SLUG].strip("-")
    if not slug:
        raise ValueError("the title needs at least one letter or digit")
    return slug


class WriteNote(Skill[WriteNoteInput, WriteNoteOutput]):
    name = "write_note"
    side_effect = SideEffect.FILE_WRITE
    input_model = WriteNoteInput
    output_model = WriteNoteOutput

    def execute(self, data: WriteNoteInput) -> WriteNoteOutput:
        slug = slugify(data.title)
        target = Path(NOTES_DIR) / f"{slug}.md"
        with open(target, "x", encoding="utf-8") as handle:
            handle.write(f"# {data.title.strip()}\n\n{data.body}\n")
        return WriteNoteOutput(path=target.as_posix())
