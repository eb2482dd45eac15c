from pathlib import Path

from save_text import SaveText, SaveTextInput


def test_saves_the_text_under_the_folder() -> None:
    result = SaveText().execute(SaveTextInput(folder="notes", text="hello"))
    assert result.path == "notes/saved.txt"
    assert Path(result.path).read_text(encoding="utf-8") == "hello"
