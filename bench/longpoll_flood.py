"""Probe and fence answer times while a crowd of clients long-polls one pod.

A real gunicorn process on loopback (32 threads), with an operation running
throughout, so that every long-poll would wait. The figures: ``GET /healthz``
on a new connection each time (as the kubelet probes) and ``POST /drain`` on
a kept-alive connection with the token (as the hook fences), first with no
long-polls, then with ``--clients`` clients each looping on
``GET /upgradeable?wait=60``. The app lets a capped number wait and answers
the rest ``429`` with ``Retry-After``, which the clients honour (plus jitter).
The crowd runs in a process of its own, as the kubelet and the hook are not in
the crowd's. Every client loop is bounded in tries and time; all traffic is
loopback.

    python -m bench.longpoll_flood [--clients 500] [--samples 300]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

import requests

from bench._stats import ms, percentile, table
from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess

REQUEST_TIMEOUT = 5.0  # a failed sample, not a hang, if the pod starves


class Crowd:
    """``clients`` threads long-polling until ``stop`` is set or their bound is reached.

    It runs in a process of its own (:func:`crowd_process`), as real clients
    do: its 500 threads must not slow the measuring client down.
    """

    def __init__(self, port: int, clients: int, stop: Event, answers: Synchronized[int]) -> None:
        self.port = port
        self.stop = stop
        self.answers = answers
        self.deadline = time.monotonic() + 600
        self.attempts = [0] * clients
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]

    def run(self, ready: Event) -> dict[int, int]:
        for thread in self.threads:
            thread.start()
        eventually(lambda: all(self.attempts), timeout=60, what="every client has asked")
        ready.set()
        self.stop.wait(600)
        for thread in self.threads:
            thread.join(timeout=15)
        return dict(sorted(self.statuses.items()))

    def _client(self, index: int, max_tries: int = 1000) -> None:
        conn: http.client.HTTPConnection | None = None
        rng = random.Random(index)
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            if self.attempts[index] >= max_tries:
                return
            self.attempts[index] += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=70)
                conn.request("GET", "/upgradeable?wait=60")
                response = conn.getresponse()
                response.read()
                status, retry_after = response.status, response.getheader("Retry-After")
            except (OSError, http.client.HTTPException):
                status, retry_after = 0, "1"
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            with self.answers.get_lock():
                self.answers.value += 1
            if status in (429, 0):
                # Retry-After, spread so that the crowd does not come back in step.
                self.stop.wait(float(retry_after or 1) * (1 + rng.random()))
        if conn is not None:
            conn.close()


def crowd_process(
    port: int,
    clients: int,
    ready: Event,
    stop: Event,
    answers: Synchronized[int],
    results: Connection,
) -> None:
    results.send(Crowd(port, clients, stop, answers).run(ready))


@dataclass
class Figures:
    times: list[float] = field(default_factory=list)
    failed: int = 0


def sample(app: AppProcess, count: int) -> tuple[Figures, Figures]:
    """``count`` probes and fences, one after the other (probe, then fence)."""
    probe, drain = Figures(), Figures()
    hook = requests.Session()
    hook.headers["Authorization"] = f"Bearer {TOKEN}"
    calls: tuple[tuple[Figures, Callable[[], requests.Response]], ...] = (
        (probe, lambda: requests.get(f"{app.url}/healthz", timeout=REQUEST_TIMEOUT)),
        (drain, lambda: hook.post(f"{app.url}/drain", json={"ttl": 30}, timeout=REQUEST_TIMEOUT)),
    )
    try:
        for _ in range(count):
            for figures, call in calls:
                started = time.perf_counter()
                try:
                    ok = call().status_code == 200
                except requests.RequestException:
                    ok = False
                if ok:
                    figures.times.append(time.perf_counter() - started)
                else:
                    figures.failed += 1
            time.sleep(0.02)  # a steady pace, not a second flood
    finally:
        with suppress(requests.RequestException):  # a starved pod cannot answer this either
            hook.delete(f"{app.url}/drain", timeout=REQUEST_TIMEOUT)
        hook.close()
    return probe, drain


def waiting(app: AppProcess) -> str:
    try:
        text = requests.get(f"{app.url}/metrics", timeout=REQUEST_TIMEOUT).text
    except requests.RequestException as exc:
        return f"unknown ({type(exc).__name__})"
    for line in text.splitlines():
        if line.startswith("upgrade_gate_long_polls "):
            return str(int(float(line.split()[1])))
    return "unknown"


def row(name: str, figures: Figures) -> list[str]:
    times = figures.times
    if not times:
        return [name, "0", "-", "-", "-", str(figures.failed)]
    return [
        name,
        str(len(times)),
        ms(percentile(times, 50)),
        ms(percentile(times, 99)),
        ms(max(times)),
        str(figures.failed),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()

    with AppProcess(threads=args.threads) as app:
        app.start_operation(3600)  # busy throughout: every long-poll would wait
        for _ in range(20):  # warm-up: imports, first requests
            sample(app, 1)
        quiet_probe, quiet_drain = sample(app, args.samples)

        context = multiprocessing.get_context("fork")
        ready, stop = context.Event(), context.Event()
        answers = context.Value("q", 0)
        results, sender = context.Pipe(duplex=False)
        crowd = context.Process(
            target=crowd_process, args=(app.port, args.clients, ready, stop, answers, sender)
        )
        started = time.monotonic()
        crowd.start()
        try:
            if not ready.wait(90):
                raise TimeoutError("the crowd did not start within 90 s")
            ramp = time.monotonic() - started
            held = waiting(app)
            answers_before, measured = answers.value, time.monotonic()
            flood_probe, flood_drain = sample(app, args.samples)
            rate = (answers.value - answers_before) / (time.monotonic() - measured)
        finally:
            stop.set()
            app.stop()  # a quick stop answers the held long-polls at once
            statuses = results.recv() if results.poll(60) else {}
            crowd.join(timeout=30)

    print(
        f"Probe and fence answer times, one app process ({args.threads} threads), loopback, "
        "an operation running"
    )
    print(
        table(
            [
                ["request", "samples", "p50", "p99", "max", "failed"],
                row("GET /healthz, no long-polls", quiet_probe),
                row(f"GET /healthz, {args.clients} long-poll clients", flood_probe),
                row("POST /drain, no long-polls", quiet_drain),
                row(f"POST /drain, {args.clients} long-poll clients", flood_drain),
            ]
        )
    )
    print(
        f"crowd: {held} long-polls held, the rest refused and retrying: "
        f"{rate:.0f} requests/s while measured; answers by status {statuses}; "
        f"all {args.clients} clients asked within {ramp:.1f} s"
    )
    print("target: p99 <= 50 ms with the crowd; failed = 0 (timeout 5 s)")


if __name__ == "__main__":
    main()
