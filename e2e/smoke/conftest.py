"""Fixtures of the provider smoke suite: one local cluster per session, images built for it.

The root conftest's `cluster` fixture brings the provider up (reusing a running cluster) and
down at the end unless --keep-cluster is given; these tests need it to be the local one. The
session builds two tags of a small HTTP image FROM the provider's base image and loads them.
test_teardown.py runs last: it takes the cluster down itself and checks that nothing is left.
Fixture names (k8s, smoke_ns) differ from the root's kube and namespace on purpose.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from e2e.providers.base import ClusterProvider
from e2e.providers.local.cluster import LocalProvider
from e2e.smoke.workloads import KubeClient

IMAGE_DIR = Path(__file__).with_name("image")
SMOKE_IMAGE = "upgrade-gate.local/smoke-http"
SMOKE_TAGS = ("v1", "v2")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The teardown test takes the cluster down, so it goes after every other test."""
    last = [item for item in items if item.path.name == "test_teardown.py"]
    items[:] = [item for item in items if item not in last] + last


@pytest.fixture(scope="session")
def keep_cluster(pytestconfig: pytest.Config) -> bool:
    # pytest-kind's option, which the root conftest gives the same meaning for every provider.
    return bool(pytestconfig.getoption("keep_cluster"))


@pytest.fixture(scope="session")
def provider(cluster: ClusterProvider) -> LocalProvider:
    """The root conftest's session cluster (which brings it up and down), if it is local."""
    if not isinstance(cluster, LocalProvider):
        pytest.skip(f"the smoke suite checks the local provider, not {cluster.name}")
    return cluster


def build_smoke_image(provider: LocalProvider, tag: str) -> str:
    ref = f"{SMOKE_IMAGE}:{tag}"
    env = {**os.environ, **provider.docker_env(), "DOCKER_BUILDKIT": "0"}
    with tempfile.TemporaryDirectory(prefix="smoke-image-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text((IMAGE_DIR / "Dockerfile").read_text())
        (context / "version").write_text(f"{tag}\n")
        subprocess.run(
            [
                "docker",
                "build",
                "--quiet",
                "--network",
                "none",
                "--build-arg",
                f"BASE_IMAGE={provider.base_image}",
                "-t",
                ref,
                str(context),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
    return ref


@pytest.fixture(scope="session")
def smoke_images(provider: LocalProvider) -> dict[str, str]:
    refs = {tag: build_smoke_image(provider, tag) for tag in SMOKE_TAGS}
    provider.load_images(list(refs.values()))
    return refs


@pytest.fixture(scope="session")
def k8s(provider: LocalProvider) -> KubeClient:
    api = config.new_client_from_config(config_file=str(provider.kubeconfig))  # type: ignore[no-untyped-call]
    return KubeClient(api)


@pytest.fixture
def smoke_ns(k8s: KubeClient, keep_cluster: bool) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    k8s.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    if not keep_cluster:
        k8s.core.delete_namespace(name)


@pytest.fixture(scope="session")
def kubectl(provider: LocalProvider) -> Kubectl:
    def run(
        *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(provider.settings.kubectl), f"--kubeconfig={provider.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    return run
