"""Count the words of a text: whitespace-separated tokens, as str.split() sees them."""

from __future__ import annotations

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel


class WordCountInput(BaseModel):
    text: str


class WordCountOutput(BaseModel):
    count: int


class WordCount(Skill[WordCountInput, WordCountOutput]):
    name = "word_count"
    side_effect = SideEffect.READ_ONLY
    input_model = WordCountInput
    output_model = WordCountOutput

    def execute(self, data: WordCountInput) -> WordCountOutput:
        return WordCountOutput(count=len(data.text.split()))
