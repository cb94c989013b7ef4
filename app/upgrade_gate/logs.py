"""One log format for the app, the hook and gunicorn: a UTC timestamp first."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def dict_config(level: str = "INFO", access_log: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that gunicorn can take as ``logconfig_dict``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"utc": {"()": UTCFormatter, "format": FORMAT}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "utc", "stream": sys.stderr}
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {
                "level": level if access_log else "WARNING",
                "handlers": [],
                "propagate": True,
            },
            # The kubernetes client logs every retry of urllib3 at WARNING.
            "urllib3": {"level": "ERROR"},
        },
    }


def setup(level: str = "INFO") -> None:
    import logging.config

    logging.config.dictConfig(dict_config(level))
