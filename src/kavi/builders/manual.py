"""The manual builder: a person is the builder.

It writes the packet into the sandbox and leaves the build AWAITING_INPUT. The person edits the sandbox
(or any folder) and resumes with ``kavi build-skill ID --resume [--from DIR]``; the same allowlist judges
what they hand back.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from kavi.builders.base import BuilderOptions, BuildOutcome, BuildPacket, BuildStatus, TraceEvent


class ManualOptions(BuilderOptions):
    pass


class ManualBuilder:
    name: ClassVar[str] = "manual"
    options_model: ClassVar[type[BuilderOptions]] = ManualOptions

    def __init__(self, options: BuilderOptions | None = None) -> None:
        self.options = options or ManualOptions()

    def available(self) -> tuple[bool, str]:
        return True, "always available: a person writes the files"

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome:
        packet_file = packet.write_into(sandbox)
        return BuildOutcome(
            status=BuildStatus.AWAITING_INPUT,
            reason=f"waiting for a person: read {packet_file}, write the allowed files, then resume",
            trace=(TraceEvent("packet", {"path": str(packet_file)}),),
        )
