from pathlib import Path

import pytest

from write_note import WriteNote, WriteNoteInput, slugify


def test_slug_keeps_letters_and_digits_only() -> None:
    assert slugify("Hello, World 2!") == "hello-world-2"


def test_a_title_without_letters_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one letter"):
        slugify("!!!")


def test_writes_the_note_under_notes() -> None:
    result = WriteNote().execute(WriteNoteInput(title="Shopping list", body="- milk"))
    assert result.path == "notes/shopping-list.md"
    assert Path(result.path).read_text(encoding="utf-8") == "# Shopping list\n\n- milk\n"


def test_never_overwrites_an_existing_note() -> None:
    WriteNote().execute(WriteNoteInput(title="Twice", body="first"))
    with pytest.raises(FileExistsError):
        WriteNote().execute(WriteNoteInput(title="Twice", body="second"))
    assert Path("notes/twice.md").read_text(encoding="utf-8") == "# Twice\n\nfirst\n"
