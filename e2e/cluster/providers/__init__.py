"""Cluster providers behind one interface (interface.py): kind, and existing (any cluster
someone else runs). ``e2e.cluster.options.ClusterOptions.provider()`` makes one."""

from e2e.cluster.providers.interface import ClusterProvider, ExportsLogs

__all__ = ["ClusterProvider", "ExportsLogs"]
