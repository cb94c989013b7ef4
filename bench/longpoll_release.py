"""Long-poll release latency: from the last operation ending to the client's 200.

Real processes on loopback, side by side in one run: the Flask app under gunicorn (a
long-poll waits in a request thread) and the Starlette app under uvicorn (it waits in a
worker thread, the event loop answers). Each trial starts a short operation, then asks
``GET /upgradeable?wait=30``; the latency is the moment the client has the 200 minus the
``finished_at`` the app recorded. Polling (what the original demo did, every 10 s) is
measured alongside at a 0.5 s period, for scale.

    python -m bench.longpoll_release [--trials 300] [--servers gunicorn,uvicorn]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from bench._stats import ms, parse_time, percentile, table
from e2e.loopback import AppProcess


def trial(app: AppProcess, seconds: float, poll_every: float | None) -> float:
    op_id = app.start_operation(seconds)
    if poll_every is None:
        response = app.get("/upgradeable", params={"wait": 30})
        assert response.status_code == 200, response.text
    else:
        while app.get("/upgradeable").status_code != 200:
            time.sleep(poll_every)
    received = datetime.now(UTC)
    record = app.operation(op_id)
    assert record["state"] == "succeeded"
    return (received - parse_time(record["finished_at"])).total_seconds()


def _row(server: str, name: str, latencies: list[float]) -> list[str]:
    return [
        server,
        name,
        str(len(latencies)),
        *(ms(percentile(latencies, q)) for q in (50, 90, 99)),
        ms(max(latencies)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--poll-trials", type=int, default=40)
    parser.add_argument("--servers", default="gunicorn,uvicorn")
    args = parser.parse_args()

    rows = [["server", "method", "trials", "p50", "p90", "p99", "max"]]
    for server in args.servers.split(","):
        with AppProcess(server=server) as app:
            for _ in range(10):  # warm-up: connections, imports, first requests
                trial(app, 0.01, None)
            for name, poll_every, count in (
                ("long-poll ?wait=30", None, args.trials),
                ("poll every 0.5 s", 0.5, args.poll_trials),
            ):
                # Operation lengths vary so that the end falls anywhere in a poll period.
                latencies = [trial(app, 0.02 + (i % 17) * 0.013, poll_every) for i in range(count)]
                rows.append(_row(server, name, latencies))
    print("Long-poll release latency (last operation ends -> client has HTTP 200), loopback")
    print(table(rows))
    print("target: long-poll p50 <= 20 ms, p99 <= 100 ms")


if __name__ == "__main__":
    main()
