"""One error hierarchy for the whole forge.

Every expected failure is a subclass of :class:`KaviError` whose message names the fix. The CLI has a
single handler that maps these to exit code 1 (or 2 for :class:`UsageError`); anything else is a bug and
exits 3 with a log file.
"""

from __future__ import annotations


class KaviError(Exception):
    """An expected failure with a one-line message that tells the user what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(KaviError):
    """The command line or its JSON arguments are malformed."""

    exit_code = 2


class WorkspaceError(KaviError):
    """No workspace, or a workspace that is not usable."""


class ConfigError(KaviError):
    """kavi.toml or an environment override is invalid."""


class SpecError(UsageError):
    """A proposed spec (name, schema, examples, side effect) is invalid."""


class NotFoundError(KaviError):
    """An id or name that the ledger does not know."""


class TransitionError(KaviError):
    """A stage was asked for in a state that does not allow it (verify before build, ...)."""


class LedgerError(KaviError):
    """The ledger cannot be opened, migrated or written."""


class IntegrityError(KaviError):
    """Bytes on disk or in the store disagree with the hash the ledger vouches for."""


class BuildError(KaviError):
    """A build could not be started or resumed (not a failed build: that is a recorded result)."""


class BuilderUnavailableError(BuildError):
    """The chosen builder cannot run here (binary or key missing, server down)."""


class DeviceUnavailableError(KaviError):
    """The command needs a device this machine lacks (a CUDA GPU to measure kernel speed)."""


class IsolationError(KaviError):
    """The required isolation level is not available on this machine."""


class SkillInputError(UsageError):
    """The input given to a skill does not match its declared schema."""


class SkillExecutionError(KaviError):
    """A TRUSTED skill raised, returned output outside its schema, or was stopped."""


class SideEffectViolation(SkillExecutionError):
    """A skill attempted an effect its side-effect class does not declare."""


class PlanRefused(KaviError):
    """A planner's answer that cannot be a plan (malformed, or over a limit): recorded, nothing proposed."""
