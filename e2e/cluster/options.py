"""The cluster's options: one set of names, defaults and environment variables for every
command that makes or finds the test cluster (pytest, ``e2e.reproduce``, ``e2e.cluster``,
``e2e.images``, ``bench.cluster_upgrade``), checked up front with a one-line error.

    ClusterOptions.add_arguments(parser.add_argument)       # argparse
    ClusterOptions.add_arguments(group.addoption, skip=...)  # pytest (pytest-kind has some)
    options = ClusterOptions.from_values(vars(args).get)    # ClusterOptionsError: one line
    options = ClusterOptions.from_pytest(config)            # the same, from pytest's options
    provider = options.provider()

An option not given falls back to its environment variable, then to its default:

=====================  ===========================  ===========================================
option                 environment                  default
=====================  ===========================  ===========================================
--cluster              UPGRADE_GATE_CLUSTER         kind (or: existing)
--kubeconfig                                        kind: the cluster's own; existing: needed
--registry                                          existing: where the images are pushed
--cluster-name                                      upgrade-gate
--kind-image           UPGRADE_GATE_KIND_IMAGE      kindest/node (kind's), or built here where
                                                    no Docker daemon answers
--kind-nodes           UPGRADE_GATE_KIND_NODES      3 (the multinode scenarios need 3)
--kind-bin             UPGRADE_GATE_KIND            kind on PATH, else built from its module
--kind-kubectl-bin     UPGRADE_GATE_KUBECTL         kubectl on PATH, else the pinned one
=====================  ===========================  ===========================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.cluster.base import ClusterError
from e2e.cluster.providers.interface import ClusterProvider
from e2e.cluster.providers.kind.settings import CLUSTER_NAME, PYTEST_KIND_DEFAULT_NAME

CLUSTERS = ("kind", "existing")
ENVIRONMENT = {
    "cluster": "UPGRADE_GATE_CLUSTER",
    "kind_image": "UPGRADE_GATE_KIND_IMAGE",
    "kind_nodes": "UPGRADE_GATE_KIND_NODES",
    "kind_bin": "UPGRADE_GATE_KIND",
    "kind_kubectl_bin": "UPGRADE_GATE_KUBECTL",
}
# The options pytest-kind adds itself (with these meanings): pytest skips them.
PYTEST_KIND_OPTIONS = ("kubeconfig", "cluster_name", "kind_image", "kind_bin", "kind_kubectl_bin")


class ClusterOptionsError(ClusterError):
    """An option (or its environment variable) cannot be used; one line says which and why."""


@dataclass(frozen=True)
class ClusterOptions:
    cluster: str = "kind"
    kubeconfig: Path | None = None
    registry: str | None = None
    cluster_name: str = CLUSTER_NAME
    kind_image: str | None = None
    kind_nodes: int = 3
    kind_bin: Path | None = None
    kind_kubectl_bin: Path | None = None

    @staticmethod
    def add_arguments(add: Callable[..., Any], *, skip: Collection[str] = ()) -> None:
        """Add the options with ``add`` (argparse's ``add_argument`` or pytest's
        ``addoption``); those named in ``skip`` are there already. Every default is None:
        :meth:`from_values` applies the environment and the defaults, so that a bad value in
        either is refused the same way."""
        table: list[tuple[str, dict[str, Any]]] = [
            ("cluster", {"choices": CLUSTERS, "help": "kind or existing (default: kind)"}),
            ("kubeconfig", {"help": "existing: the cluster's kubeconfig (needed)"}),
            ("registry", {"help": "existing: the registry HOST:PORT the images are pushed to"}),
            ("cluster_name", {"help": f"kind: the cluster's name (default: {CLUSTER_NAME})"}),
            ("kind_image", {"help": "kind: the node image (default: kind's, or built here)"}),
            ("kind_nodes", {"help": "kind: nodes, one control plane and workers (default: 3)"}),
            ("kind_bin", {"help": "kind: the kind binary (default: on PATH, or built)"}),
            (
                "kind_kubectl_bin",
                {"help": "kind: the kubectl binary (default: on PATH, or pinned)"},
            ),
        ]
        for name, kwargs in table:
            if name in skip:
                continue
            env = ENVIRONMENT.get(name)
            if env:
                kwargs["help"] = kwargs["help"].rstrip(")") + f"; ${env})"
            add(f"--{name.replace('_', '-')}", dest=name, default=None, **kwargs)

    @classmethod
    def from_values(
        cls, get: Callable[[str], Any], environ: Mapping[str, str] | None = None
    ) -> ClusterOptions:
        """The options from a parser's values (``get(dest)``), else the environment, else the
        defaults; refused in one line where a value cannot be used."""
        environ = os.environ if environ is None else environ

        def value(name: str) -> Any:
            given = get(name)
            if given not in (None, ""):
                return given
            env = ENVIRONMENT.get(name)
            return environ.get(env) or None if env else None

        cluster = value("cluster") or "kind"
        if cluster not in CLUSTERS:
            raise ClusterOptionsError(
                f"cluster {cluster!r} ({_where('cluster', get)}): choose one of "
                f"{', '.join(CLUSTERS)}"
            )
        nodes_text = value("kind_nodes")
        try:
            nodes = 3 if nodes_text is None else int(nodes_text)
        except ValueError:
            raise ClusterOptionsError(
                f"kind nodes {nodes_text!r} ({_where('kind_nodes', get)}): not a whole number"
            ) from None
        if nodes < 1:
            raise ClusterOptionsError(
                f"kind nodes {nodes} ({_where('kind_nodes', get)}): at least 1"
            )
        name = value("cluster_name")
        options = cls(
            cluster=cluster,
            kubeconfig=_path(value("kubeconfig")),
            registry=value("registry"),
            cluster_name=CLUSTER_NAME if name in (None, PYTEST_KIND_DEFAULT_NAME) else name,
            kind_image=value("kind_image"),
            kind_nodes=nodes,
            kind_bin=_path(value("kind_bin")),
            kind_kubectl_bin=_path(value("kind_kubectl_bin")),
        )
        options.check(get)
        return options

    @classmethod
    def from_pytest(cls, config: Any) -> ClusterOptions:
        """From a pytest config; an option no plugin added (pytest-kind's, where it is not
        installed: the unit tests' environments) is taken as not given."""
        return cls.from_values(lambda name: config.getoption(name, None))

    def check(self, get: Callable[[str], Any] = lambda _name: None) -> None:
        if self.cluster == "existing" and self.kubeconfig is None:
            raise ClusterOptionsError("--cluster existing needs --kubeconfig (the cluster's)")
        if self.cluster == "existing" and self.kubeconfig and not self.kubeconfig.is_file():
            raise ClusterOptionsError(f"--kubeconfig {self.kubeconfig}: no such file")
        for name in ("kind_bin", "kind_kubectl_bin"):
            binary: Path | None = getattr(self, name)
            if binary is not None and not (binary.is_file() and os.access(binary, os.X_OK)):
                raise ClusterOptionsError(f"{binary} ({_where(name, get)}): not an executable file")

    def to_arguments(self) -> list[str]:
        """These options as command-line flags: another command then finds the same cluster."""
        flags = ["--cluster", self.cluster, "--cluster-name", self.cluster_name]
        flags += ["--kind-nodes", str(self.kind_nodes)]
        for name in ("kubeconfig", "registry", "kind_image", "kind_bin", "kind_kubectl_bin"):
            value = getattr(self, name)
            if value is not None:
                flags += [f"--{name.replace('_', '-')}", str(value)]
        return flags

    def provider(self) -> ClusterProvider:
        """The cluster these options name (nothing is started until its ``up``)."""
        if self.cluster == "existing":
            from e2e.cluster.providers.existing import ExistingProvider

            assert self.kubeconfig is not None  # check() saw to it
            return ExistingProvider(self.kubeconfig, registry=self.registry)
        from e2e.cluster.providers.kind import KindProvider

        return KindProvider(
            self.cluster_name,
            kind_path=self.kind_bin,
            kubectl_path=self.kind_kubectl_bin,
            image=self.kind_image,
            kubeconfig=self.kubeconfig,
            nodes=self.kind_nodes,
        )


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None


def _where(name: str, get: Callable[[str], Any]) -> str:
    if get(name) not in (None, ""):
        return f"--{name.replace('_', '-')}"
    env = ENVIRONMENT.get(name)
    return f"${env}" if env else "default"
