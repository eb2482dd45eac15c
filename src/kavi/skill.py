"""The base class a skill file subclasses: the only part of kavi a skill may import.

A skill module holds imports, pydantic models, constants and exactly one :class:`Skill` subclass. Importing
it must do nothing; kavi calls :meth:`Skill.execute` with validated input and validates what it returns.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel

from kavi.side_effects import SideEffect

__all__ = ["BaseModel", "SideEffect", "Skill"]

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)


class Skill(Generic[InputT, OutputT]):
    """A unit of capability with a declared name, side-effect class and I/O models."""

    name: ClassVar[str]
    side_effect: ClassVar[SideEffect]
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]

    def execute(self, data: InputT) -> OutputT:
        """Compute the output. Subclasses override this; kavi validates both sides of the call."""
        raise NotImplementedError(f"{type(self).__name__} does not implement execute()")
