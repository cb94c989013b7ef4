"""A real app server with a route that holds a request thread: ``POST /hold?seconds=N``.

``python -m e2e.holding_app serve --port N ...`` takes the same arguments as
``python -m upgrade_gate_sample serve``. The sample app's own requests answer at once (its
work runs in threads of its own); a test that must show the app's request
threads all taken (and what still answers then) takes them with this.
"""

from __future__ import annotations

import time

from flask import Flask, Response, jsonify, request

from upgrade_gate_sample.cli import build_parser
from upgrade_gate_sample.server import Listeners, Server


def hold() -> Response:
    seconds = min(float(request.args.get("seconds", "30")), 600.0)
    time.sleep(seconds)
    return jsonify({"held": seconds})


class HoldingServer(Server):
    def load(self) -> Flask | Listeners:
        wsgi = super().load()
        main = wsgi.main if isinstance(wsgi, Listeners) else wsgi
        main.add_url_rule("/hold", view_func=hold, methods=["POST"])
        return wsgi


def main() -> None:
    HoldingServer.from_args(build_parser().parse_args()).run()


if __name__ == "__main__":
    main()
