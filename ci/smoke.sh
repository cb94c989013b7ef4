#!/usr/bin/env bash
# The cluster provider's smoke suite, as CI runs it: the same tox env a person runs
# (`tox -e smoke`), and whatever happens to it, the local cluster is taken down at the end,
# so a CI run leaves no process, mount, interface or rule behind.
#
# Needs root (it runs kubelet, containerd and iptables), Go >= 1.24 and gcc; the first run on
# a machine builds Kubernetes from the Go module proxy (about 15 minutes on 2 cores, cached
# in ${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/ after that).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tox >/dev/null; then
    echo "ci/smoke.sh: tox is not on PATH (pip install 'tox>=4.20')" >&2
    exit 2
fi

take_down() {
    status=$?
    if [ -x .tox/smoke/bin/python ]; then
        .tox/smoke/bin/python -m e2e.cluster down || status=1
    fi
    exit "$status"
}
trap take_down EXIT

tox -e smoke -- "$@"
