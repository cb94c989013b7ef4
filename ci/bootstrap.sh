# shellcheck shell=bash
# Sourced by ci/test and ci/demo: a Python with tox, in .venv, made from nothing
# but python3 (>= 3.11) and PyPI. Everything else (Debian packages and Docker
# where no daemon answers, kind and the node image built from Go modules where
# kindest/node cannot be pulled, helm, kubectl, images) the tox envs install
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

# Whether a Docker daemon answers (DOCKER_HOST or the default socket), said in one line. Where
# none does, the kind provider (root) starts one as a GitHub runner has one, and `down` stops
# it and puts the host back.
docker_answers() {
    "$python" -m e2e.cluster.host.docker
}
