"""Probe and fence answer times while a crowd of clients long-polls one pod.

A real gunicorn process on loopback (32 threads), with an operation running
throughout, so that every long-poll would wait. The figures: ``GET /healthz``
on a new connection each time (as the kubelet probes) and ``POST /drain`` on
a kept-alive connection with the token (as the hook fences), first with no
long-polls, then with ``--clients`` clients each looping on
``GET /upgradeable?wait=60``. The app lets a capped number wait and answers
the rest ``429`` with ``Retry-After``, which the clients honour (plus jitter).
Every client loop is bounded in tries and time; all traffic is loopback.

    python bench/longpoll_flood.py [--clients 500] [--samples 300]
"""

from __future__ import annotations

import argparse
import http.client
import random
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import requests
from _stats import ms, percentile, table

from app.testing import TOKEN, AppProcess, eventually

REQUEST_TIMEOUT = 5.0  # a failed sample, not a hang, if the pod starves


@dataclass
class Crowd:
    """``clients`` threads long-polling until ``stop`` is set or their bound is reached."""

    app: AppProcess
    clients: int
    deadline: float
    stop: threading.Event = field(default_factory=threading.Event)
    attempts: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.attempts = [0] * self.clients
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, args=(i,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _client(self, index: int, max_tries: int = 1000) -> None:
        conn: http.client.HTTPConnection | None = None
        rng = random.Random(index)
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            if self.attempts[index] >= max_tries:
                return
            self.attempts[index] += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.app.port, timeout=70)
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
            if status in (429, 0):
                # Retry-After, spread so that the crowd does not come back in step.
                self.stop.wait(float(retry_after or 1) * (1 + rng.random()))
        if conn is not None:
            conn.close()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


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

        crowd = Crowd(app, args.clients, deadline=time.monotonic() + 600)
        started = time.monotonic()
        crowd.start()
        try:
            eventually(lambda: all(crowd.attempts), timeout=60, what="every client has asked")
            held = waiting(app)
            requests_before = sum(crowd.statuses.values())
            measured = time.monotonic()
            flood_probe, flood_drain = sample(app, args.samples)
            rate = (sum(crowd.statuses.values()) - requests_before) / (time.monotonic() - measured)
        finally:
            crowd.stop.set()
            app.stop()  # a quick stop answers the held long-polls at once
            crowd.join()
        statuses = dict(sorted(crowd.statuses.items()))
        ramp = measured - started

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
