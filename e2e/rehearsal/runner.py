"""The runner: a user that is not root, with passwordless sudo and in the docker group, as
GitHub's hosted runner is (``runner``, UID 1001 there), and the commands it runs.

Made by the rehearsal where missing and removed again at its end (the ledger says whether it
was there before); one that was there before is used as it is and kept.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster.base import ClusterError
from e2e.cluster.host.commands import run

NAME = "runner"
DOCKER_GROUP = "docker"
SUDOERS = Path("/etc/sudoers.d/upgrade-gate-rehearsal")
# What a login shell of the runner has on PATH; setup-python and setup-go add their tools.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Runner:
    name: str
    uid: int
    gid: int
    home: Path

    @classmethod
    def find(cls, name: str = NAME) -> Runner | None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))

    @property
    def owner(self) -> tuple[int, int]:
        return self.uid, self.gid

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment, as a login of the runner has it: nothing of root's."""
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "PATH": PATH,
            **(extra or {}),
        }

    def command(self, argv: Sequence[str | Path], env: Mapping[str, str]) -> list[str]:
        """`argv` as the runner, with exactly `env` (runuser keeps the docker group)."""
        pairs = [f"{k}={v}" for k, v in env.items()]
        return ["runuser", "-u", self.name, "--", "env", "-i", *pairs, *map(str, argv)]

    def stream(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
        on_line: Callable[[str], None] | None = None,
    ) -> int:
        """`argv` as the runner in `cwd`; each line of its output to the terminal as it comes,
        to `log` and to `on_line`. Returns its exit status."""
        full = ["bash", "-c", f"cd {shlex.quote(str(cwd))} && exec {shlex.join(argv)}"]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as sink:
            sink.write(f"$ {shlex.join(argv)}\n")
            process = subprocess.Popen(
                self.command(full, env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                sink.write(line)
                if on_line is not None:
                    on_line(line)
            return process.wait()

    def processes(self) -> list[int]:
        done = subprocess.run(
            ["pgrep", "-u", str(self.uid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in done.stdout.split()]

    def chown(self, path: Path) -> None:
        subprocess.run(
            ["chown", "-R", "--no-dereference", f"{self.uid}:{self.gid}", str(path)], check=True
        )


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def ensure(name: str = NAME, *, sudo: bool = True) -> Runner:
    """The runner user, made: a home, bash, the docker group, and passwordless sudo unless
    `sudo` is False (a laptop's developer without root). A user of that name the rehearsal did
    not make is not ours to use or to remove: refused."""
    if os.geteuid() != 0:
        raise ClusterError("the rehearsal makes a runner user and starts a daemon: run it as root")
    if Runner.find(name) is not None:
        raise ClusterError(
            f"a user {name} exists that this rehearsal did not make (a GitHub runner's own?): "
            "not used, not touched"
        )
    if not group_exists(DOCKER_GROUP):
        run(["groupadd", "--system", DOCKER_GROUP])
    run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", DOCKER_GROUP, name])
    if sudo:
        # Checked before it is in place: a broken file there breaks sudo for everyone.
        partial = SUDOERS.with_name(".upgrade-gate-rehearsal.partial")
        partial.write_text(
            f"# upgrade-gate's rehearsal: {name} as on a GitHub runner\n"
            f"{name} ALL=(ALL) NOPASSWD:ALL\n"
        )
        partial.chmod(0o440)
        try:
            run(["visudo", "-c", "-f", partial])
            partial.replace(SUDOERS)
        finally:
            partial.unlink(missing_ok=True)
    runner = Runner.find(name)
    if runner is None:
        raise ClusterError(f"useradd {name} left no user {name}")
    return runner


# Where a job leaves files outside its home (pytest's, pip's, the kind provider's runtime
# directory): a hosted runner's machine is thrown away, this one is not.
SCRATCH = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


def scratch_of(uid: int) -> list[Path]:
    """What a user owns at the top of the shared scratch directories."""
    found = []
    for top in SCRATCH:
        for entry in top.iterdir() if top.is_dir() else []:
            try:
                if entry.lstat().st_uid == uid:
                    found.append(entry)
            except OSError:
                continue
    return sorted(found)


def remove(name: str = NAME, *, user: bool, group: bool, keep: set[str] | None = None) -> list[str]:
    """Undo `ensure`: the sudoers entry first; the user, its home and what it left in the
    scratch directories (but `keep`, there before under its UID), and the docker group, where
    the rehearsal made them. Returns what could not be removed."""
    failed = []
    SUDOERS.unlink(missing_ok=True)
    runner = Runner.find(name)
    if user and runner is not None:
        left = runner.processes()
        if left:
            failed.append(f"{name} still runs processes {left}; not removed")
        else:
            for entry in scratch_of(runner.uid):
                if str(entry) in (keep or set()):
                    continue
                subprocess.run(["rm", "-rf", "--one-file-system", str(entry)], check=False)
            done = subprocess.run(
                ["userdel", "--remove", name], capture_output=True, text=True, check=False
            )
            # userdel warns (exit 12) when the user had no mail spool; the user is gone.
            if Runner.find(name) is not None:
                failed.append(f"userdel {name}: {done.stderr.strip()}")
    if group and group_exists(DOCKER_GROUP):
        done = subprocess.run(
            ["groupdel", DOCKER_GROUP], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            failed.append(f"groupdel {DOCKER_GROUP}: {done.stderr.strip()}")
    return failed
