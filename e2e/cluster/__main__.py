"""Bring the test cluster up, take it down, say how it is, or build what it runs.

    python -m e2e.cluster up [--kind-nodes 1]
    python -m e2e.cluster status
    python -m e2e.cluster down
    python -m e2e.cluster build          # the kind node image, cached

The cluster is kind's, on the Docker daemon that answers; where none does (and we are root),
`up` starts one on the default socket, as a GitHub runner has one, and `down` stops it and
puts the host back. `up` prints one line per step with its duration, then the kubeconfig path
(${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/kind/clusters/<name>/kubeconfig); logs are under
${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/kind/logs/. The options (and their environment
variables) are those of pytest and e2e.reproduce: e2e/cluster/options.py.
"""

from __future__ import annotations

import argparse
import logging
import sys

from e2e.cluster.base import ClusterError
from e2e.cluster.options import ClusterOptions
from e2e.cluster.providers.kind import KindProvider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("up", "down", "status", "build"))
    ClusterOptions.add_arguments(parser.add_argument)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every state change")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        provider = ClusterOptions.from_values(vars(args).get).provider()
        if args.action == "up":
            provider.up()
            print(f"kubeconfig: {provider.kubeconfig}")
        elif args.action == "down":
            provider.down()
        elif args.action == "build":
            if not isinstance(provider, KindProvider):
                print(f"error: build is for kind ({provider.name} builds nothing)", file=sys.stderr)
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
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
