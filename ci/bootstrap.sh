# shellcheck shell=bash
# Sourced by ci/test and ci/demo: a Python with tox, in .venv, made from nothing
# but python3 (>= 3.11) and PyPI. Everything else (Debian packages, Kubernetes
# built from Go modules, helm, kubectl, images) the tox envs install
# themselves, into ${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "$0: Python 3.11 or newer is needed as \$PYTHON or python3" >&2
    exit 2
fi
if [ ! -x .venv/bin/tox ]; then
    echo "$(date +%H:%M:%S) bootstrap: creating .venv with tox"
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check 'tox>=4.20'
fi
# shellcheck disable=SC2034 # used by ci/test and ci/demo, which source this file
tox=.venv/bin/tox

# The cluster: the one named (--cluster NAME, $UPGRADE_GATE_CLUSTER), else the one this machine
# can run (e2e/clusterchoice.py: root and apt-get, the local cluster; else a Docker daemon
# that answers and kind, kind). Says which and why in one line, exports it as
# UPGRADE_GATE_CLUSTER (what pytest's and e2e.reproduce's --cluster default to), and leaves
# the arguments without --cluster in the array `args`.
choose_cluster() {
    UPGRADE_GATE_CLUSTER=$("$python" -m e2e.clusterchoice "$@")
    export UPGRADE_GATE_CLUSTER
    args=()
    while [ $# -gt 0 ]; do
        case $1 in
            --cluster) shift; if [ $# -gt 0 ]; then shift; fi ;;
            --cluster=*) shift ;;
            *) args+=("$1"); shift ;;
        esac
    done
}
