"""Running host commands so that a failure says which command, and what it printed."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from e2e.cluster.base import ClusterError

log = logging.getLogger("e2e.cluster.host.commands")


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_bytes: bytes | None = None,
    log_file: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with log_file its output is appended there instead of captured."""
    args = [str(a) for a in argv]
    log.debug("run: %s", shlex.join(args))
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as sink:
            sink.write(f"\n$ {shlex.join(args)}\n".encode())
            sink.flush()
            done = subprocess.run(
                args,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                input=input_bytes,
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=timeout,
            )
        result = subprocess.CompletedProcess(args, done.returncode, "", "")
        if check and done.returncode != 0:
            last = tail(log_file)
            raise ClusterError(
                f"{shlex.join(args)} exited {done.returncode}; last lines of {log_file}:\n{last}",
                command=shlex.join(args),
                log_tail=last,
            )
        return result
    done_text = subprocess.run(
        args,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        input=input_bytes.decode() if input_bytes is not None else None,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and done_text.returncode != 0:
        last = (done_text.stderr or done_text.stdout).strip()[-2000:]
        raise ClusterError(
            f"{shlex.join(args)} exited {done_text.returncode}:\n{last}",
            command=shlex.join(args),
            log_tail=last,
        )
    return done_text


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])
