"""ci/test and ci/demo's choice of cluster (e2e/clusterchoice.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.clusterchoice import Choice, Host, choose, named

ROOT = Path(__file__).resolve().parents[2]
KIND = "kind at /usr/local/bin/kind"


@pytest.mark.parametrize(
    ("host", "provider", "reason"),
    [
        (Host(root=True, apt_get=True, docker=True, kind=KIND), "local", "root and apt-get"),
        (Host(root=True, apt_get=True, docker=False, kind=None), "local", "root and apt-get"),
        # A developer's laptop: no root, Docker and kind at hand.
        (
            Host(root=False, apt_get=True, docker=True, kind=KIND),
            "kind",
            f"no root for the local cluster; Docker answers, {KIND}",
        ),
        (
            Host(root=True, apt_get=False, docker=True, kind=KIND),
            "kind",
            "no apt-get for the local cluster",
        ),
        (
            Host(root=False, apt_get=False, docker=True, kind=KIND),
            "kind",
            "no root and apt-get for the local cluster",
        ),
        # Nothing for kind either: the local cluster, which says what it lacks.
        (
            Host(root=False, apt_get=True, docker=True, kind=None),
            "local",
            "no root for the local cluster, and no kind",
        ),
        (
            Host(root=False, apt_get=False, docker=False, kind=None),
            "local",
            "no Docker daemon answers, no kind",
        ),
    ],
)
def test_the_host_decides_when_no_cluster_is_named(host: Host, provider: str, reason: str) -> None:
    choice = choose(host)
    assert choice.provider == provider
    assert reason in choice.reason
    assert choice.line() == f"cluster: {provider} ({choice.reason})"


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        (["--cluster", "kind"], {}, Choice("kind", "named with --cluster")),
        (["-x", "--cluster=existing"], {}, Choice("existing", "named with --cluster")),
        # argparse's rule: the last one wins; the option beats the environment.
        (
            ["--cluster", "kind", "--cluster", "local"],
            {"UPGRADE_GATE_CLUSTER": "kind"},
            Choice("local", "named with --cluster"),
        ),
        ([], {"UPGRADE_GATE_CLUSTER": "kind"}, Choice("kind", "named by $UPGRADE_GATE_CLUSTER")),
        (["--helm", "4"], {"UPGRADE_GATE_CLUSTER": ""}, None),
        (["--cluster"], {}, None),
    ],
)
def test_a_named_cluster_is_used_as_named(
    args: list[str], environ: dict[str, str], expected: Choice | None
) -> None:
    assert named(args, environ) == expected


def _choose_here(path: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPGRADE_GATE_", "DOCKER_"))}
    env.update(PATH=path, **extra)
    return subprocess.run(
        [sys.executable, "-m", "e2e.clusterchoice", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_looks_at_this_machine(tmp_path: Path) -> None:
    # A PATH with nothing on it: no apt-get, no docker, no kind, no go.
    done = _choose_here(str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "local\n"
    lacking = "no root and apt-get" if os.geteuid() != 0 else "no apt-get"
    assert done.stderr == (
        f"cluster: local ({lacking} for the local cluster, and no Docker daemon answers, no kind)\n"
    )


def test_the_command_takes_the_named_cluster_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    done = _choose_here(str(tmp_path), "--helm", "4", "--cluster", "kind")
    assert (done.returncode, done.stdout) == (0, "kind\n"), done.stderr
    assert done.stderr == "cluster: kind (named with --cluster)\n"
    done = _choose_here(str(tmp_path), UPGRADE_GATE_CLUSTER="minikube")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "cluster: 'minikube' is not one of local, kind, existing\n"
