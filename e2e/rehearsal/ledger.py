"""What the host looked like before the rehearsal changed it, what `undo` puts back, and the
check that nothing of it is left.

The rehearsal changes the host the way a GitHub runner's machine is set up: a user and its
sudoers entry, on top of what any Docker daemon of ours changes (e2e/cluster/host/hostledger.py: its
bridges and iptables rules, forwarding, the kubelets' tunables, a few paths). All of it is
recorded first (so an interrupted rehearsal is undone by the next one, or by
``ci/rehearse --down``) and checked afterwards. The Debian packages the rehearsal installs
(and the docker group docker.io's install makes) are prerequisites, like the providers'
packages, and stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from e2e.cluster.host.hostledger import HostLedger, LedgerError, docker_made, docker_proxies
from e2e.rehearsal import runner

__all__ = ["Ledger", "LedgerError", "docker_made", "docker_proxies"]


@dataclass
class Ledger(HostLedger):
    runner_existed: bool = False
    docker_group_existed: bool = False
    runner_home: str = ""
    runner_uid: int | None = None  # once made: what it leaves in /tmp is found by it
    runner_scratch: list[str] = field(default_factory=list)  # its UID's, there before

    @classmethod
    def record(cls, extra_paths: tuple[str, ...] = ()) -> Self:
        found = runner.Runner.find()
        ledger = super().record((*extra_paths, str(runner.SUDOERS), f"/home/{runner.NAME}"))
        ledger.runner_existed = found is not None
        ledger.docker_group_existed = runner.group_exists(runner.DOCKER_GROUP)
        ledger.runner_home = str(found.home if found else Path("/home") / runner.NAME)
        return ledger

    # --- undo -----------------------------------------------------------------------------
    def undo(self) -> list[str]:
        """Put the host back as recorded (the runner first, then the daemon's changes)."""
        failed: list[str] = []
        if not self.runner_existed:
            failed += runner.remove(
                user=True, group=not self.docker_group_existed, keep=set(self.runner_scratch)
            )
        else:
            runner.SUDOERS.unlink(missing_ok=True)
        return failed + super().undo()

    def leftovers(self) -> list[str]:
        found: list[str] = []
        if not self.runner_existed and runner.Runner.find() is not None:
            found.append(f"user {runner.NAME}")
        if not self.runner_existed and self.runner_uid is not None:
            keep = set(self.runner_scratch)
            found += [
                f"path {p} (the runner's)"
                for p in runner.scratch_of(self.runner_uid)
                if str(p) not in keep
            ]
        if not self.docker_group_existed and runner.group_exists(runner.DOCKER_GROUP):
            found.append(f"group {runner.DOCKER_GROUP}")
        return found + super().leftovers()
