"""Every default foveate uses, in one place: flags over environment over config file over defaults.

Every setting can come from (highest first): a command-line flag, an environment variable
``FOVEATE_<NAME>`` (e.g. ``FOVEATE_MODEL``, ``FOVEATE_MEMORY_DB``), the TOML config file
(``$FOVEATE_CONFIG``, else ``~/.foveate/config.toml``), or the default below. The config file uses the
same names in lower case::

    model = "/models/Qwen2.5-VL-7B-Instruct"
    workflow = "full"
    max_total_tokens = 40000
    memory_db = "postgresql+psycopg://me@db/foveate"

Settings are read when a command starts (``load_settings``), never at import time. Every ``foveate``
command and ``Agent.from_defaults`` resolve their defaults here, so ``calibration_db`` in the config
file is the database ``foveate calibrate`` writes and ``foveate run --alpha`` reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from foveate.errors import SettingsError, validation_problems

__all__ = ["FoveateSettings", "SettingsError", "config_path", "load_settings"]


def config_path() -> Path:
    """``$FOVEATE_CONFIG``, else ``~/.foveate/config.toml`` (it need not exist)."""
    return Path(os.environ.get("FOVEATE_CONFIG") or Path.home() / ".foveate" / "config.toml").expanduser()


def _home(*parts: str) -> str:
    return str(Path.home().joinpath(".foveate", *parts))


class FoveateSettings(BaseSettings):
    """Defaults for the ``foveate`` commands; flags override them."""

    model_config = SettingsConfigDict(env_prefix="FOVEATE_", extra="forbid", validate_default=True)

    model: str | None = None
    """Local model folder or hub id (None: the embedded tiny VLM); with ``endpoint``, the served name."""
    endpoint: str | None = None
    """OpenAI-compatible server URL (vLLM), instead of a local model."""
    family: str | None = None
    """The model's family when its config cannot say (a served model: ``qwen2_vl``, ``llava``...)."""
    server_timeout: float = Field(default=60.0, gt=0.0, le=3600.0)
    """With ``endpoint``: seconds to wait for one reply before the try counts as failed."""
    server_retries: int = Field(default=2, ge=0, le=20)
    """With ``endpoint``: tries after a failed one (with exponential backoff) before the call fails."""
    workflow: str = "full"
    """Built-in workflow name (direct, zoom, full) or a YAML file."""
    max_total_tokens: int | None = Field(default=None, ge=1, le=10**12)
    """Cap on all tokens spent on one question."""
    max_visual_tokens: int | None = Field(default=None, ge=1, le=10**12)
    """Cap on visual tokens per image."""
    max_options: int = Field(default=26, ge=2, le=1000)
    """Most options a question may have: each is scored against the image (500 options took 64,000
    visual tokens in one 132 s call). 26 = A to Z, what a lettered protocol can name."""
    memory_db: str = Field(default_factory=lambda: _home("memory.db"))
    """The insight memory: a SQLite file or a SQLAlchemy URL."""
    namespace: str = "default"
    """Whose insights and runs in that memory (a user or project): nothing crosses namespaces."""
    calibration_db: str = Field(default_factory=lambda: _home("calibrations.db"))
    """Calibration records: a SQLite file or a SQLAlchemy URL."""
    checkpoints: str = Field(default_factory=lambda: _home("runs.db"))
    """Run checkpoints: a SQLite file or a PostgreSQL URL."""
    alpha: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Gate answers with the newest stored calibration at this alpha (None: no gate)."""
    method: Literal["lac", "aps", "crc", "ltt"] = "lac"
    """Which calibration gates multiple-choice answers, stored (with ``alpha``) or shipped: ``lac`` (a
    prediction set; answered when it is one option, so P(answered and wrong) <= alpha too), ``aps``,
    ``crc`` (a threshold on the top probability: answers more, no set) or ``ltt``."""
    default_gate: bool = True
    """Without ``alpha``: gate with the calibration the model folder ships for the workflow
    (``foveate_gates.json``; the embedded tiny VLM ships one per built-in workflow), when one fits."""
    allow_calibration_mismatch: bool = False
    """Use a stored calibration made for another model, workflow or budget (its guarantee does not carry
    over; for experiments)."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, value: str | None) -> str | None:
        value = value.strip() if value is not None else None
        if not value:  # FOVEATE_ENDPOINT= switches the server off, as it always did
            return None
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not a server URL (http://HOST:PORT/v1)")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _method_any_case(cls, value: Any) -> Any:
        # a typo must not pass: an unknown method used to switch the shipped gate off without a word
        return value.strip().lower() if isinstance(value, str) else value

    def backend_options(self) -> dict[str, Any]:
        """What ``load_vlm`` passes to the backend besides the model: a server's timeout and retries."""
        if not self.endpoint:
            return {}
        return {"timeout": self.server_timeout, "max_retries": self.server_retries}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_path()))


def load_settings(**flags: Any) -> FoveateSettings:
    """Settings with ``flags`` (those not None) on top; a bad value names its source."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return FoveateSettings(**given)
    except ValidationError as exc:
        raise SettingsError(
            f"invalid settings ({validation_problems(exc)}); check the flags, FOVEATE_* environment "
            f"variables and {config_path()}"
        ) from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise SettingsError(f"cannot read config file {config_path()}: {exc}") from None
