"""The GitHub workflows rehearsed on this machine, as GitHub runs them.

``ci/rehearse [WORKFLOW] [JOB]`` runs the workflow's own YAML with `act` (pinned, built from
its Go module) in self-hosted mode, as a user that is not root, with passwordless sudo and in
the docker group, like GitHub's ``runner``; the pinned actions from local copies; Python and
Go for ``setup-python`` and ``setup-go`` from a tool cache made of this machine's interpreters
and the Go toolchain module; a Docker daemon on the default socket, in the host's network, as
a runner has one. What the machine cannot pull (the ``kindest/node`` image, the app's base
image) is built here and stands in for it, and the output says so. Everything the rehearsal
changes on the host is recorded first, undone at the end and checked.

Layers, each importing only those before it: ``options``; ``workflows`` (reading the YAML)
and ``actions`` (the local copies), which know nothing of the host; ``runner``,
``toolcache``, ``standins`` and ``ledger`` (with the Docker daemon and host ledger of
e2e/cluster/host), which change the host and put it back;
``artifacts`` (the proxy in front of act's artifact server) and ``act``, which runs one job;
``results``, what a job left and whether it ended as it must; ``rehearse``, the list of named
steps over all of them.
"""
