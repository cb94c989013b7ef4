"""Probe and fence answer times while slow clients hold connections; operations
lost under a thread limit.

A real gunicorn process on loopback (32 threads), an operation running
throughout. ``GET /healthz`` on a new connection each time (as the kubelet
probes) and ``POST /drain`` with the token (as the hook fences), measured:

- with no other clients;
- with ``--clients`` slowloris connections held: each sends part of its
  headers, then a byte a second, and opens a new connection when the server
  ends one (the server gives a request 10 s from its first byte);
- with ``--clients`` HTTP/1.0 clients that never close: each asks for
  ``/healthz``, reads the answer, and keeps the connection open, then asks
  again on a new one.

The clients run in a process of their own. Then, under a thread limit
(``e2e.thread_limited_app``: as a container's pids limit would do), clients
start operations at once until refused, and the figures say how many of the
accepted operations did not succeed, and whether the worker was replaced.

    python -m bench.slow_clients [--clients 64] [--samples 300]
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Event

import requests

from bench._stats import table
from bench.longpoll_flood import Figures, row, sample
from e2e.cluster.wait import eventually
from e2e.loopback import AppProcess

THREADS = 32


def slowloris(port: int, stop: Event, held: list[int], index: int) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                held[index] = 1
                while not stop.wait(1.0):
                    sock.sendall(b"X-a: b\r\n")
                    sock.settimeout(0.0)
                    try:
                        sock.recv(4096)
                        break  # answered (408) or closed: a new one
                    except BlockingIOError:
                        pass
                    finally:
                        sock.settimeout(30)
        except OSError:
            pass
        held[index] = 0


def lingering(port: int, stop: Event, held: list[int], index: int) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                while sock.recv(65536):
                    pass
                held[index] = 1
                stop.wait(5.0)  # the server has closed its side; this one stays open
        except OSError:
            pass
        held[index] = 0


def crowd_process(kind: str, port: int, clients: int, ready: Event, stop: Event) -> None:
    client: Callable[[int, Event, list[int], int], None] = (
        slowloris if kind == "slowloris" else lingering
    )
    held = [0] * clients
    threads = [
        threading.Thread(target=client, args=(port, stop, held, i), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    eventually(lambda: all(held), timeout=60, what=f"{clients} {kind} connections held")
    ready.set()
    stop.wait(600)
    for thread in threads:
        thread.join(timeout=15)


def under_crowd(app: AppProcess, kind: str, clients: int, samples: int) -> tuple[Figures, Figures]:
    context = multiprocessing.get_context("fork")
    ready, stop = context.Event(), context.Event()
    crowd = context.Process(target=crowd_process, args=(kind, app.port, clients, ready, stop))
    crowd.start()
    try:
        if not ready.wait(90):
            raise TimeoutError(f"the {kind} clients did not connect within 90 s")
        return sample(app, samples)
    finally:
        stop.set()
        crowd.join(timeout=30)


def thread_limit(limit: int, attempts: int) -> list[str]:
    """Operations started at once by 8 clients under ``limit`` threads: the figures' row."""
    with AppProcess(
        {"THREAD_LIMIT": str(limit)}, module="e2e.thread_limited_app", threads=THREADS
    ) as app:
        instance = app.status()["instance"]

        def start(_: int) -> tuple[int, str | None]:
            try:
                response = requests.post(f"{app.url}/operations", json={"seconds": 2}, timeout=30)
            except requests.RequestException:
                return 0, None
            return response.status_code, response.json().get("id")

        with ThreadPoolExecutor(8) as clients:
            answers = list(clients.map(start, range(attempts)))
        accepted = [op for code, op in answers if code == 202 and op]
        refused = sum(code == 503 for code, _ in answers)
        failed = sum(code not in (202, 503) for code, _ in answers)

        def state(op: str) -> str:
            try:
                return str(app.operation(op)["state"])
            except (requests.RequestException, ValueError, KeyError):
                return "lost"

        with_deadline = time.monotonic() + 60
        while time.monotonic() < with_deadline and any(state(op) == "running" for op in accepted):
            time.sleep(0.2)
        lost = sum(state(op) != "succeeded" for op in accepted)
        try:
            replaced = app.status()["instance"] != instance
        except requests.RequestException:
            replaced = True
    return [
        str(limit),
        str(attempts),
        str(len(accepted)),
        str(refused),
        str(failed),
        str(lost),
        "yes" if replaced else "no",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()

    with AppProcess(threads=THREADS) as app:
        app.start_operation(3600)
        for _ in range(20):  # warm-up: imports, first requests
            sample(app, 1)
        quiet = sample(app, args.samples)
        loris = under_crowd(app, "slowloris", args.clients, args.samples)
        linger = under_crowd(app, "lingering", args.clients, args.samples)

    print(f"Probe and fence answer times, one app process ({THREADS} threads), loopback")
    print(
        table(
            [
                ["request", "samples", "p50", "p99", "max", "failed"],
                row("GET /healthz, no other clients", quiet[0]),
                row(f"GET /healthz, {args.clients} slowloris", loris[0]),
                row(f"GET /healthz, {args.clients} lingering HTTP/1.0", linger[0]),
                row("POST /drain, no other clients", quiet[1]),
                row(f"POST /drain, {args.clients} slowloris", loris[1]),
                row(f"POST /drain, {args.clients} lingering HTTP/1.0", linger[1]),
            ]
        )
    )
    print("target: p99 <= 50 ms with the slow clients held; failed = 0 (timeout 5 s)")
    print()
    print(f"Operations started at once under a thread limit ({THREADS} request threads)")
    print(
        table(
            [
                [
                    "thread limit",
                    "attempts",
                    "accepted",
                    "refused 503",
                    "other",
                    "lost",
                    "worker replaced",
                ],
                thread_limit(1 + THREADS + 1 + 20, 100),
            ]
        )
    )
    print("target: lost = 0, worker replaced = no")


if __name__ == "__main__":
    main()
