"""The hook's side of the gate contract, for one pod.

Every call has a timeout and turns every failure into a value: the waiter
decides what an unreachable or refusing pod means, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import urllib3

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
    def not_served(self) -> bool:
        """The answer of a router that has no such endpoint (404) or no such method on it
        (405), whatever its body: the original demo's gin answers in plain text. Who
        answered (the app, or something in its place) is for the caller to find out."""
        return self.status in (404, 405)

    @property
    def refused_by_app(self) -> bool:
        """A 401 or 403 with the contract's JSON ``error``: the app's own refusal of the token
        (a proxy's or a mesh's denial has no such body)."""
        return self.status in (401, 403) and isinstance(self.body.get("error"), str)

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
    def watched(self) -> bool:
        """The answer of a ``?watch`` the app understood (an older one ignores it)."""
        return self.body.get("watched") is True

    @property
    def draining(self) -> bool:
        return self.body.get("draining") is True

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
    """HTTP calls to one pod over one kept-alive connection. Not shared between threads.

    urllib3 directly, not requests: the hook's final round asks every pod at
    once, and requests costs several times urllib3's CPU per call.
    """

    def __init__(self, base_url: str, token: str | None, holder: str = "upgrade-gate-hook") -> None:
        self.base_url = base_url
        self.holder = holder
        self.headers = {"User-Agent": "upgrade-gate-hook", "Accept": "application/json"}
        self.has_token = bool(token)
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.pool = urllib3.connection_from_url(base_url, maxsize=1, block=False, retries=False)

    def fence(self, ttl: float) -> Answer:
        body = json.dumps({"ttl": ttl, "holder": self.holder}).encode()
        return self._call("POST", "/drain", read=5.0, body=body)

    def release(self) -> Answer:
        return self._call("DELETE", f"/drain?{urlencode({'holder': self.holder})}", read=5.0)

    def upgradeable(self, wait: float = 0.0) -> Answer:
        path = f"/upgradeable?wait={wait:.3f}" if wait > 0 else "/upgradeable"
        return self._call("GET", path, read=wait + READ_MARGIN)

    def watch(self, seconds: float, holding: Callable[[str], None]) -> Answer:
        """Held while the pod stays fenced and idle, at most ``seconds``.

        ``holding`` is called with the app's instance as soon as the app says
        the watch holds (the answer's head, before its body).
        """

        def head(response: urllib3.BaseHTTPResponse) -> None:
            if response.headers.get("Upgrade-Gate-Watch") == "holding":
                holding(response.headers.get("Upgrade-Gate-Instance", ""))

        return self._call(
            "GET", f"/upgradeable?watch={seconds:.3f}", read=seconds + READ_MARGIN, head=head
        )

    def close(self) -> None:
        self.pool.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        read: float,
        body: bytes | None = None,
        head: Callable[[urllib3.BaseHTTPResponse], None] | None = None,
    ) -> Answer:
        headers = self.headers
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            response = self.pool.urlopen(
                method,
                path,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read),
                preload_content=head is None,
            )
            if head is None:
                raw = response.data
            else:
                head(response)
                raw = response.read()  # the body comes when the app ends the watch
                response.release_conn()
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.NewConnectionError) as e:
            return Answer(error=f"unreachable: {_reason(e)}")
        except urllib3.exceptions.ReadTimeoutError:
            return Answer(error=f"no answer within {read:g}s")
        except urllib3.exceptions.ProtocolError as exc:
            # The connection broke under the call (the app process died).
            return Answer(error=f"unreachable: connection lost ({_reason(exc)})")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if "refused" in str(exc).lower() or "unreachable" in str(exc).lower():
                return Answer(error=f"unreachable: {_reason(exc)}")
            return Answer(error=f"request failed: {_reason(exc)}")
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        if not isinstance(parsed, dict):
            return Answer(
                status=response.status,
                error=f"HTTP {response.status} without a JSON object body",
            )
        return Answer(
            status=response.status,
            body=parsed,
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
