"""The Builder protocol, the packet a builder reads and the outcome it returns.

A builder gets a :class:`BuildPacket` and a sandbox folder (a copy of the workspace with secrets stripped)
and writes files there. It never touches the ledger or the real workspace: the build stage applies the
diff allowlist to whatever the builder left in the sandbox.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

PACKET_FILE = "BUILD_PACKET.md"
PACKET_JSON = ".kavi_build_packet.json"


class BuildStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    AWAITING_INPUT = "AWAITING_INPUT"


class FailureKind(StrEnum):
    """Why an attempt failed: the builders' contract (they report the first four) and what each gate's
    failure means (the VERIFY_ kinds, which every gate declares as ``failure_kind``)."""

    GATE_VIOLATION = "GATE_VIOLATION"
    TIMEOUT = "TIMEOUT"
    BUILD_ERROR = "BUILD_ERROR"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    VERIFY_POLICY = "VERIFY_POLICY"
    VERIFY_INVARIANT = "VERIFY_INVARIANT"
    VERIFY_KERNEL = "VERIFY_KERNEL"
    VERIFY_EXAMPLES = "VERIFY_EXAMPLES"
    VERIFY_TEST = "VERIFY_TEST"
    VERIFY_TYPE = "VERIFY_TYPE"
    VERIFY_LINT = "VERIFY_LINT"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class BuildPacket:
    """What a builder is asked to do: the frozen spec, the rules, the allowed paths, earlier failures."""

    proposal_id: str
    attempt: int
    spec: dict[str, Any]
    allowed_paths: tuple[str, ...]
    rules: tuple[str, ...]
    previous_failure: dict[str, Any] | None = None
    advice: str | None = None
    # A complete skill that passes every gate and the gates' exact settings (kavi.kinds: the build_guide):
    # what a builder needs to get it right the first time instead of learning the rules from failures.
    guide: dict[str, str] = field(default_factory=dict)
    # `kavi forge --optimize`: the best verified candidate's measured speed (interval, roofline fraction, the
    # slowest size), so the next attempt knows what to beat. Absent from the JSON when there is none.
    performance: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.performance is None:
            del data["performance"]
        return data

    def render_markdown(self) -> str:
        """The packet as a person or an agent reads it."""
        spec = self.spec
        lines = [
            f"# Build packet: {spec['name']} (attempt {self.attempt})",
            "",
            f"Proposal: `{self.proposal_id}`",
            "",
            "## Task",
            spec.get("description", ""),
            "",
            "## Files you may create or change (nothing else leaves this sandbox)",
            *[f"- `{path}`" for path in self.allowed_paths],
            "",
            "## Rules",
            *[f"- {rule}" for rule in self.rules],
            "",
            "## Frozen spec",
            "```json",
            json.dumps(spec, indent=2, sort_keys=True),
            "```",
            *self._render_guide(),
        ]
        if self.previous_failure:
            lines += [
                "",
                "## The previous attempt failed",
                "```json",
                json.dumps(self.previous_failure, indent=2, sort_keys=True),
                "```",
            ]
        if self.advice:
            lines += ["", "## Advice", self.advice]
        if self.performance:
            lines += [
                "",
                "## Make it faster (the candidate to beat verified; it must stay correct)",
                "```json",
                json.dumps(self.performance, indent=2, sort_keys=True),
                "```",
            ]
        return "\n".join(lines) + "\n"

    def _render_guide(self) -> list[str]:
        guide = self.guide
        if not guide:
            return []
        return [
            "",
            "## The gates' exact settings",
            "The lint gate runs exactly this on your two files (nothing else configures it):",
            "```sh",
            guide["ruff"],
            "```",
            guide["imports"],
            "",
            "The type gate runs `mypy` with exactly this configuration file:",
            "```ini",
            guide["mypy"].rstrip("\n"),
            "```",
            "",
            f"## A complete skill that passes every gate: `{guide['example_name']}` (an example, not your task)",
            "Yours differs in name, models and logic; its shape, imports and annotations are what the gates want.",
            "```python",
            f"# {guide['example_skill_path']}",
            guide["example_skill"].rstrip("\n"),
            "```",
            "```python",
            f"# {guide['example_test_path']}",
            guide["example_test"].rstrip("\n"),
            "```",
        ]

    def write_into(self, sandbox: Path) -> Path:
        """Write the packet (markdown for reading, JSON for tools) into the sandbox; return the markdown."""
        markdown = sandbox / PACKET_FILE
        markdown.write_text(self.render_markdown(), encoding="utf-8")
        (sandbox / PACKET_JSON).write_text(json.dumps(self.to_json(), sort_keys=True), encoding="utf-8")
        return markdown


@dataclass(frozen=True)
class TraceEvent:
    """One exchange with a builder: a prompt, a message, a tool call or result, usage."""

    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class BuildOutcome:
    status: BuildStatus
    reason: str | None = None
    trace: tuple[TraceEvent, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = None
    duration_s: float = 0.0
    failure_kind: str | None = None


class BuilderOptions(BaseModel):
    """Options of a builder; subclasses add fields. Unknown keys are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Builder(Protocol):
    """Anything that can turn a packet into files in a sandbox."""

    name: ClassVar[str]
    options_model: ClassVar[type[BuilderOptions]]

    def available(self) -> tuple[bool, str]:
        """Whether this builder can run here, and a one-line reason or fix."""
        ...

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome: ...


@dataclass(frozen=True)
class ModelAnswer:
    """One text answer of a builder's model asked a single question with no tools (the planner's call)."""

    text: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = None


class Planner(Protocol):
    """A builder whose model can also answer one question in text, with no tools: ``kavi plan`` asks it.

    ``ask`` raises :class:`~kavi.errors.BuilderUnavailableError` when the model cannot be reached and
    :class:`~kavi.errors.BuildError` for any other failure; the text is the model's final answer, unparsed."""

    name: ClassVar[str]

    @property
    def options(self) -> BuilderOptions: ...

    def available(self) -> tuple[bool, str]: ...

    def ask(self, system: str, user: str) -> ModelAnswer: ...
