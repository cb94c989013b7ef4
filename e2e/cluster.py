"""Bring the test cluster up, take it down, say how it is, or build what it runs.

    python -m e2e.cluster up [--kind-nodes 3]
    python -m e2e.cluster status
    python -m e2e.cluster down
    python -m e2e.cluster build          # the kind node image, cached

The cluster is kind's, on the Docker daemon that answers; where none does (and we are root),
`up` starts one on the default socket, as a GitHub runner has one, and `down` stops it and
puts the host back. `up` prints one line per phase with its duration, then the kubeconfig path
(${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/kind/clusters/<name>/kubeconfig); logs are under
${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/kind/logs/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from e2e.providers import PROVIDERS, make_provider
from e2e.providers.base import ProviderError
from e2e.providers.kind import KindProvider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("up", "down", "status", "build"))
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="kind")
    parser.add_argument(
        "--kubeconfig", type=Path, help="existing provider: the cluster's kubeconfig"
    )
    parser.add_argument("--registry", help="existing provider: registry that load_images pushes to")
    parser.add_argument("--kind-path", type=Path, help="kind provider: the kind binary")
    parser.add_argument("--kubectl-path", type=Path, help="kind provider: the kubectl binary")
    parser.add_argument(
        "--cluster-name", help="kind provider: the cluster's name (default: upgrade-gate)"
    )
    parser.add_argument(
        "--kind-image", help="kind provider: the node image (default: built here, or kind's)"
    )
    parser.add_argument(
        "--kind-nodes", type=int, default=1, help="kind provider: nodes (1 control plane + workers)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every state change")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        provider = make_provider(
            args.provider,
            kubeconfig=args.kubeconfig,
            registry=args.registry,
            kind_path=args.kind_path,
            kubectl_path=args.kubectl_path,
            cluster_name=args.cluster_name,
            kind_image=args.kind_image,
            kind_nodes=args.kind_nodes,
        )
        if args.action == "up":
            provider.up()
            print(f"kubeconfig: {provider.kubeconfig}")
        elif args.action == "down":
            provider.down()
        elif args.action == "build":
            if not isinstance(provider, KindProvider):
                print(f"error: build is for --provider kind ({provider.name} builds nothing)")
                return 2
            provider.build()
        else:
            if not isinstance(provider, KindProvider):
                print(f"{provider.name}: kubeconfig {provider.kubeconfig}")
                return 0
            report = provider.status()
            width = max(len(k) for k in report)
            for key, value in report.items():
                print(f"{key:<{width}}  {value}")
            return 0 if report["node"].startswith("Ready") else 3
    except ProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
