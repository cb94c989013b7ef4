"""The test cluster: kind, on the Docker daemon that answers (or one started as a GitHub runner
has one), or a cluster someone else runs. Its own package, below the rest of the harness, in
layers that import only downwards (pyproject.toml's import contracts keep them so):

    __main__    python -m e2e.cluster up|down|status|build
    options     ClusterOptions: one set of names, defaults and environment variables
    providers   the interface, kind (its cluster, node image, pod network, nodes), existing
    tools       pinned helm and kubectl; gotools: tools built from Go modules (kind, act, ...)
    builds      Go module builds, images, root filesystems
    host        commands, processes, locks, mounts, iptables, tunables, packages, the Docker
                daemon and the ledger that puts the host back
    base, wait  ClusterError, progress lines, paths and ports; eventually()

README.md says how it works; tests/cluster holds its tests.
"""
