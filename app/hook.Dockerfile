# The pre-upgrade hook alone: `python3 -m upgrade_gate.hook` (the library with its
# hook extra, urllib3) on the base image's CPython, and nothing else: no shell,
# no package manager, no app (app/hook_rootfs.py says what is copied). The chart
# runs it as the hook, for the sample app and for any app that speaks the
# contract. Build from the repository root:
#   docker build -f app/hook.Dockerfile -t upgrade-gate-hook:dev .
# Builds with no network inside containers install from a wheelhouse that
# e2e/images.py prepares on the host:
#   --build-arg PIP_ARGS="--no-index --find-links /src/.wheelhouse" \
#   --build-arg PACKAGE="helm-upgrade-gate[hook]"
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_ARGS=""
ARG PACKAGE="/src[hook]"
COPY . /src
# pip and setuptools leave the venv once it is installed: nothing runs them.
# Bytecode is compiled here, once, for the venv and for the standard library
# the image keeps: the pod runs with a read-only root filesystem (and
# PYTHONDONTWRITEBYTECODE), so without it every start compiles every module
# it imports. The unchecked-hash form carries no timestamps, so builds stay
# reproducible.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_ARGS} ${PACKAGE} \
 && /opt/venv/bin/pip uninstall --yes --quiet --disable-pip-version-check pip setuptools \
 && python3 /src/app/hook_rootfs.py /opt/venv /rootfs \
 && find /rootfs -name __pycache__ -prune -exec rm -rf {} + \
 && python3 -m compileall -q -j0 --invalidation-mode unchecked-hash \
        -s /rootfs -p / /rootfs/usr /rootfs/opt/venv

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="upgrade-gate-hook" \
      org.opencontainers.image.description="The pre-upgrade hook of helm-upgrade-gate: python3 -m upgrade_gate.hook wait|release" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /rootfs /
ENV PATH=/opt/venv/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A numeric user, so that runAsNonRoot can check it without /etc/passwd.
USER 10001:10001
ENTRYPOINT ["python3", "-m", "upgrade_gate.hook"]
CMD ["--help"]
