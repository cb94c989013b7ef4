"""The cluster's options (e2e/cluster/options.py): one set of names, defaults and environment
variables for every command, refused up front in one line, and the provider they name."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cluster.base import ClusterError
from e2e.cluster.builds.golang import staging_replacements
from e2e.cluster.builds.images import normalize
from e2e.cluster.options import ClusterOptions, ClusterOptionsError
from e2e.cluster.providers.existing import ExistingProvider
from e2e.cluster.providers.interface import ClusterProvider
from e2e.cluster.providers.kind import KindProvider

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str, environ: dict[str, str] | None = None) -> ClusterOptions:
    parser = argparse.ArgumentParser()
    ClusterOptions.add_arguments(parser.add_argument)
    return ClusterOptions.from_values(vars(parser.parse_args(argv)).get, environ or {})


@pytest.fixture
def kind_bin(tmp_path: Path) -> Path:
    """Any executable named as the kind binary: these tests run no kind command."""
    binary = tmp_path / "kind"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return binary


def test_nothing_given_is_kind_with_three_nodes_named_upgrade_gate() -> None:
    assert parse() == ClusterOptions("kind", cluster_name="upgrade-gate", kind_nodes=3)


def test_the_environment_stands_in_for_options_not_given(kind_bin: Path) -> None:
    environ = {
        "UPGRADE_GATE_KIND_NODES": "1",
        "UPGRADE_GATE_KIND_IMAGE": "kindest/node:v1.34.3",
        "UPGRADE_GATE_KIND": str(kind_bin),
    }
    options = parse(environ=environ)
    assert (options.kind_nodes, options.kind_image, options.kind_bin) == (
        1,
        "kindest/node:v1.34.3",
        kind_bin,
    )
    assert parse("--kind-nodes", "2", environ=environ).kind_nodes == 2, "an option wins"


@pytest.mark.parametrize(
    ("argv", "environ", "says"),
    [
        (["--kind-nodes", "0"], {}, "kind nodes 0 (--kind-nodes): at least 1"),
        ([], {"UPGRADE_GATE_KIND_NODES": "three"}, "'three' ($UPGRADE_GATE_KIND_NODES): not a"),
        ([], {"UPGRADE_GATE_CLUSTER": "local"}, "'local' ($UPGRADE_GATE_CLUSTER): choose one of"),
        (["--cluster", "existing"], {}, "--cluster existing needs --kubeconfig"),
        (["--cluster", "existing", "--kubeconfig", "/nowhere"], {}, "/nowhere: no such file"),
        (["--kind-bin", "/nowhere/kind"], {}, "/nowhere/kind (--kind-bin): not an executable"),
        ([], {"UPGRADE_GATE_KUBECTL": "/nowhere/k"}, "($UPGRADE_GATE_KUBECTL): not an executable"),
    ],
)
def test_a_value_that_cannot_be_used_is_refused_in_one_line_naming_where_it_came_from(
    argv: list[str], environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ClusterOptionsError) as refused:
        parse(*argv, environ=environ)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)
    assert isinstance(refused.value, ClusterError)


def test_pytest_kinds_default_name_means_ours() -> None:
    # pytest-kind's --cluster-name defaults to "pytest-kind": every command names one cluster.
    assert parse("--cluster-name", "pytest-kind").cluster_name == "upgrade-gate"
    assert parse("--cluster-name", "mine").cluster_name == "mine"


def test_the_options_as_flags_name_the_same_cluster_again(kind_bin: Path) -> None:
    options = parse("--kind-nodes", "1", "--kind-bin", str(kind_bin), "--cluster-name", "x")
    assert parse(*options.to_arguments()) == options


def test_kind_honours_its_image_binary_and_kubeconfig(kind_bin: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    options = ClusterOptions(kubeconfig=kubeconfig, kind_image="kindest/node:v1.34.3")
    provider = dataclasses.replace(options, kind_bin=kind_bin).provider()
    assert isinstance(provider, KindProvider)
    assert isinstance(provider, ClusterProvider)
    assert provider.kubeconfig == kubeconfig
    assert provider.image == "kindest/node:v1.34.3"
    assert provider.kind_path == kind_bin.resolve()


def test_kind_never_downloads_a_missing_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClusterError, match="no kind binary"):
        ClusterOptions().provider()


def test_the_existing_provider_needs_a_registry_to_load_images(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    provider = parse("--cluster", "existing", "--kubeconfig", str(kubeconfig)).provider()
    assert isinstance(provider, ExistingProvider)
    with pytest.raises(ClusterError, match="without a registry"):
        provider.load_images(["upgrade-gate-app:v1"])


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "e2e.cluster", "status"],
        ["-m", "e2e.images"],
        ["-m", "bench.cluster_upgrade", "--runs", "1"],
    ],
)
def test_every_command_refuses_a_bad_option_before_it_does_anything(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *command, "--kind-nodes", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (1, 2), done
    assert "kind nodes 0 (--kind-nodes): at least 1" in done.stderr


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
