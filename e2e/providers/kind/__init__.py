"""The kind provider: kind clusters through pytest-kind, on any Docker or on our own.

cluster.py is the provider; on a machine with no registry and no Docker daemon it runs its
own dockerd in a network namespace (dockerd.py), builds the node image here (nodeimage.py),
routes pods without kindnetd (network.py), relays the API server's port to the host's
loopback (relay.py) and checks at `down` that the host is as before (ledger.py).
"""

from e2e.providers.kind.cluster import KindProvider

__all__ = ["KindProvider"]
