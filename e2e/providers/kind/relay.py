"""A loopback port of the host that leads to the same port inside a network namespace.

kind publishes the API server on 127.0.0.1:<port> of the namespace its Docker daemon runs in,
so the kubeconfig kind writes names an address the host does not have. This relay listens on
127.0.0.1:<port> of the host and connects each client to 127.0.0.1:<port> inside the
namespace: pytest, helm and kubectl use the kubeconfig as kind wrote it. Traffic stays on the
two loopbacks.

One process, standard library only (it runs with `python -I`): the listening socket is made
in the host's namespace; the connecting sockets are made by worker threads that entered the
target namespace with setns(2) (a thread's namespace is its own), and a socket stays in the
namespace it was made in.

    python -I relay.py --netns /run/upgrade-gate/kind/netns --port 6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CLONE_NEWNET = 0x40000000
LOOPBACK = "127.0.0.1"
CHUNK = 1 << 16


def enter_netns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def thread_netns() -> int:
    return Path("/proc/thread-self/ns/net").stat().st_ino


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(netns: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    workers = ThreadPoolExecutor(max_workers=4, initializer=enter_netns, initargs=(netns,))
    inside = await loop.run_in_executor(workers, thread_netns)
    if inside != Path(netns).stat().st_ino:
        raise SystemExit(f"relay: the worker threads did not enter {netns}")

    def connect() -> socket.socket:
        return socket.create_connection((LOOPBACK, port), timeout=10)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream = await loop.run_in_executor(workers, connect)
        except OSError:
            client_w.close()
            return
        upstream.setblocking(False)
        upstream_r, upstream_w = await asyncio.open_connection(sock=upstream)
        await asyncio.gather(pipe(client_r, upstream_w), pipe(upstream_r, client_w))

    server = await asyncio.start_server(handle, LOOPBACK, port, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"relay: 127.0.0.1:{port} -> {netns} 127.0.0.1:{port}", flush=True)
    async with server:
        await stop.wait()
    workers.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True, help="a network namespace file")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.netns, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
