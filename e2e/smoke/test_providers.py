"""Provider plumbing that needs no cluster: choosing a provider, refusing what it cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.builds.golang import staging_replacements
from e2e.builds.images import normalize
from e2e.providers import make_provider
from e2e.providers.base import ClusterProvider, ProviderError
from e2e.providers.existing import ExistingProvider
from e2e.providers.kind import KindProvider

pytestmark = pytest.mark.smoke


def test_the_kind_provider_offers_the_interface(kind_bin: Path) -> None:
    kind = make_provider("kind")
    assert isinstance(kind, KindProvider)
    assert isinstance(kind, ClusterProvider)
    assert kind.kubeconfig.name == "kubeconfig"


def test_there_is_no_local_cluster_any_more() -> None:
    with pytest.raises(ProviderError, match="unknown provider 'local'"):
        make_provider("local")


def test_kind_provider_never_downloads_a_missing_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPGRADE_GATE_KIND", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProviderError, match="no kind binary"):
        make_provider("kind")


@pytest.fixture
def kind_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Any executable named as the kind binary: these tests run no kind command."""
    binary = tmp_path / "kind"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setenv("UPGRADE_GATE_KIND", str(binary))
    return binary


def test_one_kind_cluster_name_everywhere(kind_bin: Path, pytestconfig: pytest.Config) -> None:
    # pytest's --cluster-name (pytest-kind's option, default "pytest-kind") and the
    # defaults of python -m e2e.cluster and python -m e2e.images name the same cluster.
    from_pytest = make_provider("kind", cluster_name=pytestconfig.getoption("cluster_name"))
    from_commands = make_provider("kind")
    assert isinstance(from_pytest, KindProvider)
    assert isinstance(from_commands, KindProvider)
    assert from_pytest.cluster_name == from_commands.cluster_name == "upgrade-gate"
    chosen = make_provider("kind", cluster_name="mine")
    assert isinstance(chosen, KindProvider)
    assert chosen.cluster_name == "mine"


def test_kind_honours_kind_image_and_kubeconfig(kind_bin: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    provider = make_provider("kind", kubeconfig=kubeconfig, kind_image="kindest/node:v1.34.3")
    assert isinstance(provider, KindProvider)
    assert provider.kubeconfig == kubeconfig
    assert provider.image == "kindest/node:v1.34.3"
    assert provider.kind_path == kind_bin.resolve()


def test_existing_provider_needs_a_registry_to_load_images(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    provider = make_provider("existing", kubeconfig=kubeconfig)
    assert isinstance(provider, ExistingProvider)
    with pytest.raises(ProviderError, match="without a registry"):
        provider.load_images(["upgrade-gate-app:v1"])
    with pytest.raises(ProviderError, match="needs --kubeconfig"):
        make_provider("existing")


@pytest.mark.parametrize(
    ("ref", "normalized"),
    [
        ("upgrade-gate-app:v1", "docker.io/library/upgrade-gate-app:v1"),
        ("upgrade-gate/debian-python:bookworm", "docker.io/upgrade-gate/debian-python:bookworm"),
        ("upgrade-gate.local/pause:3.10.1", "upgrade-gate.local/pause:3.10.1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
    ],
)
def test_image_names_match_what_containerd_and_kubelet_use(ref: str, normalized: str) -> None:
    assert normalize(ref) == normalized


def test_staging_modules_are_replaced_by_their_published_versions() -> None:
    go_mod = (
        "replace (\n"
        "\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n"
        "\tgithub.com/other/thing => ./vendor/thing\n"
        ")\n"
    )
    assert staging_replacements(go_mod, "34", "v1.34.4") == [
        "\tk8s.io/api => k8s.io/api v0.34.4",
        "\tk8s.io/client-go => k8s.io/client-go v0.34.4",
    ]
