"""kavi.toml, validated. Unknown keys are an error, so a typo never silently changes nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kavi.errors import ConfigError
from kavi.wording import first_error

CONFIG_FILE = "kavi.toml"


class LedgerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = ".kavi/ledger.db"


class BuildSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    builder: str = "manual"
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)


class VerifySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_s: float = Field(default=120.0, gt=0)


class RunSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_s: float = Field(default=60.0, gt=0)
    # What the ledger keeps of a run's input: its sha256, size and a bounded preview, or all of it.
    record_input: Literal["preview", "full"] = "preview"


class IsolationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    require: bool = False


class Config(BaseModel):
    """kavi.toml, validated: unknown keys are an error so a typo never silently changes nothing."""

    model_config = ConfigDict(extra="forbid")
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    build: BuildSettings = Field(default_factory=BuildSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    run: RunSettings = Field(default_factory=RunSettings)
    isolation: IsolationSettings = Field(default_factory=IsolationSettings)


def load_config(root: Path) -> Config:
    path = root / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {first_error(exc.errors(), 'the file')}") from None
