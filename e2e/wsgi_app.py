"""A plain WSGI app (no framework) behind :mod:`upgrade_gate.wsgi`, for gunicorn on loopback.

``gunicorn e2e.wsgi_app:app`` serves it. ``POST /operations`` (a JSON body
``{"seconds": N}``) runs an operation in the background and answers ``202
{"id"}``, or the contract's 503 while the pod is fenced (the gate's
:class:`WorkRefusedError`, answered by the middleware). ``GET /healthz`` is a
probe that says how many long-polls wait; ``/upgradeable`` and ``/drain`` are
the gate's. ``UPGRADE_GATE_TOKEN`` is the drain token, ``LONG_POLL_LIMIT`` the
anonymous long-polls (the hook's get one more).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from upgrade_gate import Gate
from upgrade_gate.contract import LongPollLimits
from upgrade_gate.wsgi import UpgradeGate

gate = Gate()


def work(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
    if (path, method) == ("/healthz", "GET"):
        status, body = "200 OK", {"status": "ok", "long_polls": gate.long_polls}
    elif (path, method) == ("/operations", "POST"):
        size = int(environ.get("CONTENT_LENGTH") or 0)
        seconds = float(json.loads(environ["wsgi.input"].read(size) or b"{}").get("seconds", 1))
        op = gate.run_in_background("sleep", lambda _op: time.sleep(seconds))  # 503 if fenced
        status, body = "202 Accepted", {"id": op.id}
    else:
        status, body = "404 Not Found", {"error": "not_found"}
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [data]


app = UpgradeGate(
    gate,
    token=os.environ.get("UPGRADE_GATE_TOKEN"),
    app=work,
    long_polls=LongPollLimits(anonymous=int(os.environ.get("LONG_POLL_LIMIT", "4")), authorized=1),
)
