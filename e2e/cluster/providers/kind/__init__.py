"""The kind provider: kind clusters through pytest-kind, on the Docker daemon that answers.

cluster.py is the provider; on a machine with no Docker daemon (and root) it starts one as a
GitHub runner has one (host/dockerd.py) and puts the host back at `down` (host/hostledger.py);
where `kindest/node` cannot be pulled it builds the node image here (nodeimage.py) and routes
pods without kindnetd (network.py).
"""

from e2e.cluster.providers.kind.cluster import KindProvider

__all__ = ["KindProvider"]
