"""Daemons the provider starts, known by PID: started detached, stopped by PID and only by PID.

Each daemon gets a pidfile holding its PID and its start time (from /proc/<pid>/stat), so a
PID that the kernel has since given to another process is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster.base import ClusterError
from e2e.cluster.host.commands import tail

log = logging.getLogger("e2e.cluster.host.processes")


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    start_time: int
    argv0: str


def proc_start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot, or None if the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def reap(pid: int) -> None:
    """Collect a child that exited, so that it does not linger as a zombie of ours."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class ProcessTable:
    def __init__(self, pids_dir: Path) -> None:
        self.pids_dir = pids_dir
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def _pidfile(self, name: str) -> Path:
        return self.pids_dir / f"{name}.json"

    def start(self, daemon: Daemon) -> Running:
        if (running := self.get(daemon.name)) is not None:
            raise ClusterError(f"{daemon.name} already runs as PID {running.pid}")
        self.pids_dir.mkdir(parents=True, exist_ok=True)
        daemon.log_file.parent.mkdir(parents=True, exist_ok=True)
        with daemon.log_file.open("ab") as sink:
            # A new session: the daemon outlives the command that started it, and a terminal's
            # Ctrl-C does not reach it; it ends when `down` signals its PID.
            child = subprocess.Popen(
                list(daemon.argv),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=dict(daemon.env) if daemon.env is not None else None,
                start_new_session=True,
                close_fds=True,
            )
        self._children[child.pid] = child
        started = proc_start_time(child.pid)
        if started is None:
            raise ClusterError(
                f"{daemon.name} exited at once; last lines of {daemon.log_file}:\n"
                f"{tail(daemon.log_file)}"
            )
        record = Running(daemon.name, child.pid, started, str(daemon.argv[0]))
        self._pidfile(daemon.name).write_text(json.dumps(record.__dict__))
        log.info("started %s as PID %d (log %s)", daemon.name, child.pid, daemon.log_file)
        return record

    def get(self, name: str) -> Running | None:
        """The daemon if its recorded PID is still that same, live process."""
        path = self._pidfile(name)
        try:
            record = Running(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if proc_start_time(record.pid) != record.start_time:
            reap(record.pid)
            return None
        return record

    def recorded(self) -> Iterator[str]:
        if self.pids_dir.is_dir():
            for path in sorted(self.pids_dir.glob("*.json")):
                yield path.stem

    def alive(self) -> list[Running]:
        return [r for name in self.recorded() if (r := self.get(name)) is not None]

    def stop(self, name: str, grace: float = 20.0) -> None:
        running = self.get(name)
        if running is not None:
            stop_pid(running.pid, running.start_time, name, grace)
        self._pidfile(name).unlink(missing_ok=True)

    def wait_until(
        self,
        name: str,
        ready: Callable[[], bool],
        timeout: float,
        log_file: Path,
        what: str = "ready",
    ) -> None:
        """Poll ready() until it holds; fail at once, with the log's tail, if the daemon died."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if self.get(name) is None:
                raise ClusterError(
                    f"{name} exited before it was {what}; last lines of {log_file}:\n"
                    f"{tail(log_file)}"
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"{name} not {what} after {timeout:.0f}s; last lines of {log_file}:\n"
                    f"{tail(log_file)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def stop_pid(pid: int, start_time: int, name: str, grace: float) -> None:
    """SIGTERM, then SIGKILL after the grace period; only if the PID is still that process."""
    if proc_start_time(pid) != start_time:
        reap(pid)
        return
    log.info("stopping %s (PID %d)", name, pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap(pid)
        if proc_start_time(pid) != start_time:
            log.info("%s (PID %d) exited", name, pid)
            return
        time.sleep(0.05)
    log.warning("%s (PID %d) ignored SIGTERM for %.0fs: SIGKILL", name, pid, grace)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        reap(pid)
        if proc_start_time(pid) != start_time:
            return
        time.sleep(0.05)
    raise ClusterError(f"{name} (PID {pid}) survived SIGKILL")


def stop_all(pids: set[int], why: str, grace: float = 5.0) -> None:
    """SIGTERM every PID at once, SIGKILL whatever is left after the grace period."""
    started = {pid: t for pid in pids if (t := proc_start_time(pid)) is not None}
    if not started:
        return
    log.info("stopping %d %s: %s", len(started), why, sorted(started))
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid, start_time in started.items():
            if proc_start_time(pid) == start_time:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for pid in started:
                reap(pid)
            if all(proc_start_time(pid) != t for pid, t in started.items()):
                return
            time.sleep(0.05)
    left = [pid for pid, t in started.items() if proc_start_time(pid) == t]
    if left:
        raise ClusterError(f"{why} survived SIGKILL: {left}")


def processes_matching(predicate: Callable[[int, list[str]], bool]) -> list[tuple[int, list[str]]]:
    """Live processes whose (pid, argv) satisfy predicate."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if args and proc_start_time(pid) is not None and predicate(pid, args):
            found.append((pid, args))
    return found
