"""Halve an even number; an odd one has no whole half."""

from __future__ import annotations

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel


class HalveInput(BaseModel):
    n: int


class HalveOutput(BaseModel):
    half: int


class Halve(Skill[HalveInput, HalveOutput]):
    name = "halve"
    side_effect = SideEffect.READ_ONLY
    input_model = HalveInput
    output_model = HalveOutput

    def execute(self, data: HalveInput) -> HalveOutput:
        if data.n % 2:
            raise ValueError(f"{data.n} is odd: it has no whole half")
        return HalveOutput(half=data.n // 2)
