"""Settings read from the environment, checked once at start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def package_version() -> str:
    try:
        return version("helm-upgrade-gate")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    version: str
    token: str | None
    default_seconds: float
    max_seconds: float
    shutdown_timeout: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            version=env.get("APP_VERSION") or package_version(),
            token=env.get("UPGRADE_GATE_TOKEN") or None,
            default_seconds=_seconds(env, "OPERATION_DEFAULT_SECONDS", 30.0),
            max_seconds=_seconds(env, "OPERATION_MAX_SECONDS", 3600.0),
            shutdown_timeout=_seconds(env, "SHUTDOWN_TIMEOUT_SECONDS", 3600.0),
        )
        if settings.default_seconds > settings.max_seconds:
            raise ConfigError(
                "OPERATION_DEFAULT_SECONDS must not exceed OPERATION_MAX_SECONDS "
                f"({settings.default_seconds:g} > {settings.max_seconds:g})"
            )
        return settings
