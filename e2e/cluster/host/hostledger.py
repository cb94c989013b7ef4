"""What the host looked like before a Docker daemon of ours ran on it, what `undo` puts back,
and the check that nothing of it is left.

A daemon on the default socket, in the host's network (as a GitHub runner has one), changes
the host: bridges and the veths on them, iptables rules and chains that name Docker's chains
or bridges, forwarding turned on, tunables the kubelets of kind's nodes set, a few paths
(the socket, /etc/docker). All of it is recorded first (saved atomically, so an interrupted
run is undone by the next one, or by `down`) and checked afterwards. Only what that daemon and
its containers make is undone or checked: a change someone else makes meanwhile is theirs.
The kind provider and the rehearsal (which adds its runner user) both keep one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from e2e.cluster.base import ClusterError
from e2e.cluster.host import iptables, sysctls
from e2e.cluster.host.processes import processes_matching

# Host paths the daemon or iptables make when missing (dockerd 20.10 writes a trust key, and
# makes its plugin directory whatever its --exec-root; the socket is GitHub's path; kind
# bind-mounts /lib/modules; iptables takes its lock file).
HOST_PATHS = (
    "/var/run/docker.sock",
    "/etc/docker/key.json",
    "/etc/docker",
    "/run/docker",
    "/run/xtables.lock",
    "/lib/modules",
)
# Tunables of the host's network namespace that dockerd sets (forwarding), and those any
# kubelet sets on its own (not namespaced: kind's nodes set the host's).
NET_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/accept_redirects",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/default/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv6/conf/all/forwarding",
    "net/ipv6/conf/default/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
TUNABLES = (*NET_SYSCTLS, *sysctls.KUBELET_SYSCTLS)
# What Docker names its bridges and its chains.
DOCKER_BRIDGE = re.compile(r"^(docker0|br-[0-9a-f]{12})$")
DOCKER_IN_RULE = re.compile(r"\b(DOCKER[\w-]*|docker0|br-[0-9a-f]{12})\b")


def docker_made(chain: str, rule: str) -> bool:
    """Whether an iptables chain or rule is Docker's: our daemon is the only one."""
    return chain.startswith("DOCKER") or bool(DOCKER_IN_RULE.search(rule))


class LedgerError(ClusterError):
    """The ledger cannot be read: the host's state before is not known, so nothing is undone."""


@dataclass
class HostLedger:
    absent_paths: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)
    docker_proxies: list[int] = field(default_factory=list)

    @classmethod
    def record(cls, extra_paths: tuple[str, ...] = ()) -> Self:
        return cls(
            absent_paths=[p for p in (*HOST_PATHS, *extra_paths) if not Path(p).exists()],
            interfaces=interfaces(),
            sysctls=sysctls.snapshot_sysctls(TUNABLES),
            rules=iptables.rule_snapshot(),
            docker_proxies=[pid for pid, _argv in docker_proxies()],
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Self | None:
        """The ledger, or None where there is none; one that cannot be read is an error."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            loaded = json.loads(text)
            known = {f.name for f in fields(cls)}
            if not isinstance(loaded, dict) or set(loaded) - known:
                raise TypeError(f"not a {cls.__name__}: {sorted(set(loaded) - known)}")
            return cls(**loaded)
        except (ValueError, TypeError) as exc:
            raise LedgerError(
                f"the ledger {path} cannot be read ({exc}): what the host was before is not "
                "known, so nothing is undone; put the host back by hand, then remove the file"
            ) from exc

    # --- undo -----------------------------------------------------------------------------
    def undo(self) -> list[str]:
        """Put the host back as recorded; returns what could not be put back. The daemon and
        every process of ours must be stopped first (an interface in use comes back). Each
        part is tried whatever the others did."""
        failed: list[str] = []
        for name in self.new_interfaces():
            done = subprocess.run(
                ["ip", "link", "delete", name], capture_output=True, text=True, check=False
            )
            if done.returncode != 0 and name in interfaces():
                failed.append(f"ip link delete {name}: {done.stderr.strip()}")
        failed += iptables.undo_since(self.rules, docker_made)
        # ip_forward first: writing it resets every interface's forwarding to the same value.
        ordered = dict(sorted(self.sysctls.items(), key=lambda kv: kv[0] != "net/ipv4/ip_forward"))
        failed += sysctls.restore_sysctls(ordered)
        for absent in self.absent_paths:
            path = Path(absent)
            if path.is_symlink() or path.is_file() or path.is_socket():
                path.unlink()
            elif path.is_dir():
                _remove_empty_tree(path)
        return failed

    def new_interfaces(self) -> list[str]:
        """Docker's bridges and the veths on them that were not there before."""
        return [
            name
            for name in sorted(set(interfaces()) - set(self.interfaces))
            if DOCKER_BRIDGE.match(name) or name.startswith("veth")
        ]

    def leftovers(self) -> list[str]:
        """Every way the host differs from the record in what our daemon makes: empty when
        the undo was complete."""
        found = [f"path {p}" for p in self.absent_paths if _there(Path(p))]
        found += [f"interface {i}" for i in self.new_interfaces()]
        found += sysctls.changed_sysctls(self.sysctls)
        found += iptables.rule_differences(self.rules, docker_made)
        before = set(self.docker_proxies)
        found += [
            f"process PID {pid}: {' '.join(argv)[:160]}"
            for pid, argv in docker_proxies()
            if pid not in before
        ]
        return found


def interfaces() -> list[str]:
    """The host's links; a failing `ip` is an error, never "no links"."""
    done = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClusterError(f"ip -j link exited {done.returncode}: {done.stderr.strip()}")
    return sorted(link["ifname"] for link in json.loads(done.stdout or "[]"))


def docker_proxies() -> list[tuple[int, list[str]]]:
    """docker-proxy processes: a daemon killed hard leaves them, with nothing of ours in argv."""
    return processes_matching(lambda _pid, argv: Path(argv[0]).name == "docker-proxy")


def _there(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove_empty_tree(top: Path) -> None:
    """Remove `top` if all under it is directories (all of it or nothing, links not followed):
    dockerd's /run/docker/plugins is ours, a file someone put there is not."""
    for below, dirs, files in os.walk(top):
        if files or any((Path(below) / d).is_symlink() for d in dirs):
            return
    for below, _dirs, _files in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):
            Path(below).rmdir()
