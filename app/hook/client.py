"""The hook's side of the gate contract, for one pod.

Every call has a timeout and turns every failure into a value: the waiter
decides what an unreachable or refusing pod means, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests

CONNECT_TIMEOUT = 2.0
READ_MARGIN = 5.0


@dataclass(frozen=True)
class Answer:
    """What a pod said, or why it said nothing (``error`` set, ``status`` 0)."""

    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    retry_after: float | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def upgradeable(self) -> bool:
        # The original demo answered 200 with only ``isUpgradeable``; a newer
        # app answers 503 when busy. Either way the body decides.
        value = self.body.get("upgradeable", self.body.get("isUpgradeable"))
        return self.reachable and value is True

    @property
    def understood(self) -> bool:
        """The body speaks the gate contract (any version, or the original demo)."""
        value = self.body.get("upgradeable", self.body.get("isUpgradeable"))
        return self.reachable and isinstance(value, bool)

    @property
    def running(self) -> list[str]:
        running = self.body.get("running")
        return [str(r) for r in running] if isinstance(running, list) else []

    @property
    def instance(self) -> str | None:
        """The app process that answered (a restart makes a new one); None from older apps."""
        instance = self.body.get("instance")
        return instance if isinstance(instance, str) and instance else None

    @property
    def active(self) -> int | None:
        active = self.body.get("active")
        return active if isinstance(active, int) and not isinstance(active, bool) else None

    def describe(self) -> str:
        if self.error:
            return self.error
        message = self.body.get("error") or self.body.get("message") or ""
        return f"HTTP {self.status}{': ' + str(message) if message else ''}"


class PodClient:
    """HTTP calls to one pod. Not shared between threads: one per pod thread."""

    def __init__(self, base_url: str, token: str | None, holder: str = "upgrade-gate-hook") -> None:
        self.base_url = base_url
        self.holder = holder
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "upgrade-gate-hook"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def fence(self, ttl: float) -> Answer:
        return self._call("POST", "/drain", json={"ttl": ttl, "holder": self.holder}, read=5.0)

    def release(self) -> Answer:
        return self._call("DELETE", "/drain", params={"holder": self.holder}, read=5.0)

    def upgradeable(self, wait: float = 0.0) -> Answer:
        params = {"wait": f"{wait:.3f}"} if wait > 0 else None
        return self._call("GET", "/upgradeable", params=params, read=wait + READ_MARGIN)

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, *, read: float, **kwargs: Any) -> Answer:
        try:
            response = self.session.request(
                method, self.base_url + path, timeout=(CONNECT_TIMEOUT, read), **kwargs
            )
        except requests.ConnectionError as exc:
            return Answer(error=f"unreachable: {_reason(exc)}")
        except requests.Timeout:
            return Answer(error=f"no answer within {read:g}s")
        except requests.RequestException as exc:
            return Answer(error=f"request failed: {_reason(exc)}")
        try:
            body = response.json()
        except (ValueError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            return Answer(
                status=response.status_code,
                error=f"HTTP {response.status_code} without a JSON object body",
            )
        return Answer(
            status=response.status_code,
            body=body,
            retry_after=_seconds(response.headers.get("Retry-After")),
        )


def _seconds(header: str | None) -> float | None:
    try:
        value = float(header) if header else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < 3600 else None


def _reason(exc: BaseException) -> str:
    # requests buries the useful part ("Connection refused") in a long repr.
    text = str(exc)
    for marker in ("Connection refused", "No route to host", "timed out", "Name or service"):
        if marker in text:
            return marker.lower()
    return text[-200:]
