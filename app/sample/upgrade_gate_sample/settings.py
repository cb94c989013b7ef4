"""The sample app's settings, read from the environment, checked once at start-up."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from upgrade_gate.config import ConfigError, read_token
from upgrade_gate.contract import LongPollLimits


def package_version() -> str:
    # Imported here: importlib.metadata is the dearest import of the hook's
    # start (which needs only ConfigError), and only the app reads a version.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("upgrade-gate-sample")
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


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _long_polls(env: Mapping[str, str], threads: int) -> LongPollLimits:
    name = "LONG_POLL_LIMIT"
    raw = env.get(name) or None
    if raw is not None and not re.fullmatch(r"[0-9]+", raw.strip()):
        raise ConfigError(f"{name} must be a whole number of long-polls, got {raw!r}")
    try:
        return LongPollLimits.for_threads(threads, None if raw is None else int(raw))
    except ValueError as exc:
        raise ConfigError(f"{name} {exc}" if raw else f"--threads {exc}") from None


# Operations running at once, each in a thread of its own; one more is a 503 cannot_start.
DEFAULT_OPERATION_LIMIT = 256


@dataclass(frozen=True)
class Settings:
    version: str
    token: str | None
    default_seconds: float
    max_seconds: float
    shutdown_timeout: float
    long_polls: LongPollLimits
    operation_limit: int = DEFAULT_OPERATION_LIMIT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, threads: int = 32) -> Settings:
        """``threads``: the server's request threads, which bound the long-polls."""
        env = os.environ if env is None else env
        settings = cls(
            version=env.get("APP_VERSION") or package_version(),
            token=read_token(env),
            default_seconds=_seconds(env, "OPERATION_DEFAULT_SECONDS", 30.0),
            max_seconds=_seconds(env, "OPERATION_MAX_SECONDS", 3600.0),
            shutdown_timeout=_seconds(env, "SHUTDOWN_TIMEOUT_SECONDS", 3600.0),
            long_polls=_long_polls(env, threads),
            operation_limit=_whole(env, "OPERATION_LIMIT", DEFAULT_OPERATION_LIMIT),
        )
        if settings.default_seconds > settings.max_seconds:
            raise ConfigError(
                "OPERATION_DEFAULT_SECONDS must not exceed OPERATION_MAX_SECONDS "
                f"({settings.default_seconds:g} > {settings.max_seconds:g})"
            )
        return settings
