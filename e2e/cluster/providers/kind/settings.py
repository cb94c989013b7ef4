"""Versions, names and paths of the kind provider: one place, so they agree.

Kubernetes is the version the node image is built with where `kindest/node` cannot be pulled;
etcd, CoreDNS and pause are the versions that version's kubeadm asks for (read from kubeadm
itself at build time). kind is pinned once, in e2e/cluster/builds/kind.py.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from e2e.cluster.base import ClusterError, cache_root
from e2e.cluster.builds.kind import KIND_VERSION
from e2e.cluster.host.dockerd import DefaultSocketDaemon

# 1.34 is the last minor whose kubelet runs on cgroup v1 without opting in (1.35 sets
# failCgroupV1 by default); this machine has cgroup v1 only for the controllers kubelet needs.
KUBERNETES_VERSION = "v1.34.4"
# The CoreDNS release kubeadm pairs with Kubernetes 1.34 (cmd/kubeadm/app/constants).
COREDNS_VERSION = "v1.12.1"
CRICTL_VERSION = "v1.34.0"
# kind v0.33 pins v0.0.34 (as kindest/local-path-provisioner), which the proxy does not serve.
LOCAL_PATH_PROVISIONER_VERSION = "v0.0.30"

# One cluster name everywhere: pytest (--cluster-name), python -m e2e.cluster and e2e.images.
CLUSTER_NAME = "upgrade-gate"
# pytest-kind's --cluster-name default; taken as "not chosen", i.e. CLUSTER_NAME.
PYTEST_KIND_DEFAULT_NAME = "pytest-kind"

# debootstrap bookworm with python3 (builds/images.py ensure_debian_image): the app's base
# image where no registry is reached.
BASE_IMAGE = "upgrade-gate/debian-python:bookworm"

# Names that say "ours" on the host.
CGROUP_PARENT = "upgrade-gate-kind"
IMAGE_DOMAIN = "upgrade-gate.local"
# A label our node image carries: it has no kindnetd, the provider routes pods itself.
CNI_LABEL = "io.upgrade-gate.kind.cni"


def runtime_dir(
    euid: int | None = None,
    environ: Mapping[str, str] | None = None,
    tmp: Path | None = None,
) -> Path:
    """Where the provider keeps its runtime files (its lock, PID files, our dockerd's socket),
    short enough for a socket path whatever XDG_CACHE_HOME is.

    Root: /run/upgrade-gate/kind (our own Docker daemon needs root; its state is there).
    Anyone else (a laptop, GitHub's runner): $XDG_RUNTIME_DIR/upgrade-gate/kind where that is a
    directory of theirs, else /tmp/upgrade-gate-<uid>/kind, its top made 0700 and refused if
    it is a link, someone else's, or open to others."""
    euid = os.geteuid() if euid is None else euid
    environ = os.environ if environ is None else environ
    if euid == 0:
        return Path("/run/upgrade-gate/kind")
    given = environ.get("XDG_RUNTIME_DIR")
    if given and _private_dir(Path(given), euid):
        return Path(given) / "upgrade-gate" / "kind"
    top = (tmp or Path(tempfile.gettempdir())) / f"upgrade-gate-{euid}"
    try:
        top.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ClusterError(f"kind provider: cannot make {top}: {exc}") from exc
    if not _private_dir(top, euid):
        raise ClusterError(
            f"kind provider: {top} is not a directory of UID {euid} closed to others "
            "(a link, or made by someone else): remove it, or set XDG_RUNTIME_DIR"
        )
    return top / "kind"


def _private_dir(path: Path, euid: int) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == euid and not info.st_mode & 0o077


def cluster_name(given: str | None) -> str:
    """The cluster name to use: the one given, unless it is pytest-kind's default."""
    if not given or given == PYTEST_KIND_DEFAULT_NAME:
        return CLUSTER_NAME
    return given


@dataclass(frozen=True)
class KindSettings:
    kubernetes_version: str = KUBERNETES_VERSION
    kind_version: str = KIND_VERSION
    crictl_version: str = CRICTL_VERSION
    local_path_provisioner_version: str = LOCAL_PATH_PROVISIONER_VERSION
    cache: Path = field(default_factory=cache_root)
    # Sockets must fit in 108 bytes whatever XDG_CACHE_HOME is: runtime_dir() says where.
    run_dir: Path = field(default_factory=runtime_dir)
    pod_subnet: str = "10.244.0.0/16"

    # --- cached (kept across `down`) ------------------------------------------------------
    @property
    def images_dir(self) -> Path:
        return self.cache / "images"

    @property
    def base_image(self) -> str:
        """The app's base image where no registry is reached (debootstrap + python3)."""
        return BASE_IMAGE

    @property
    def kind_dir(self) -> Path:
        return self.cache / "kind"

    @property
    def build_log(self) -> Path:
        return self.kind_dir / "build.log"

    @property
    def docker_data_root(self) -> Path:
        return self.kind_dir / "docker"

    @property
    def tmp_dir(self) -> Path:
        """TMPDIR of `kind build node-image`, which unpacks the server tarball there."""
        return self.kind_dir / "tmp"

    def state_dir(self, cluster: str) -> Path:
        return self.kind_dir / "clusters" / cluster

    @property
    def logs_dir(self) -> Path:
        return self.kind_dir / "logs"

    @property
    def ledger(self) -> Path:
        """What the host looked like before the first `up`, so `down` can put it back."""
        return self.kind_dir / "ledger.json"

    # --- runtime (removed by `down`) ---------------------------------------------------------
    @property
    def daemon(self) -> DefaultSocketDaemon:
        """Our Docker daemon, where none answers: on the default socket, as a runner has one;
        its data root (the node image) kept, its runtime state removed by `down`."""
        return DefaultSocketDaemon(
            self.docker_data_root,
            self.run_dir / "dockerd",
            self.logs_dir / "dockerd.log",
            cgroup_parent=CGROUP_PARENT,
            who="the kind provider's",
        )

    # --- images --------------------------------------------------------------------------------
    def node_image(self, key: str) -> str:
        return f"{IMAGE_DOMAIN}/kind-node:{self.kubernetes_version}-{key}"
