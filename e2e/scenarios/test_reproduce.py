"""``python -m e2e.reproduce``, end to end: a wrong expectation fails it, by name.

The command runs as developers run it, in its own process, on the session's
cluster (reused, kept), with a file from outside the repository: an idle
upgrade that expects what did not happen (v1 served after an upgrade to v2,
revision 5). Played twice (``--repeat 2``), it must exit 1, name exactly
those expectations, and count their passes; its collectors (``catch``, since it
fails, and ``finally``) leave their files.

``--from-release`` starts a file from a running release: two replicas, a 60 s
operation on one, read back as the release's values, two pods and that
operation's seconds left on its pod; a release that does not exist is refused
in one line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cluster.options import ClusterOptions
from e2e.helm import Helm
from e2e.images import AppImages
from e2e.kube import Kube
from e2e.playbook.load import load
from e2e.stage import Stage

# long: a whole nested session (images, two plays); xdist starts it first.
pytestmark = [pytest.mark.e2e, pytest.mark.long]

ROOT = Path(__file__).resolve().parents[2]
WRONG = """\
apiVersion: upgrade-gate/v1alpha1
kind: Scenario
metadata:
  name: wrong-expectation
spec:
  duration: 150
  release:
    image: v1
  upgrade:
    image: v2
  expect:
    helm: succeeded
    gatedPods: 1
    release: {status: deployed, revision: 5}
    serves: v1
  catch:
    - podLogs: {pods: all}
    - describe: {kind: Deployment, name: "{release}-upgrade-gate"}
    - helm: [history, "{release}", -n, "{namespace}"]
  finally:
    - command: [sh, -c, 'echo "$RELEASE in $NAMESPACE"']
"""


def _harness_options(config: pytest.Config) -> list[str]:
    """This session's cluster options, so that the command reuses the same cluster."""
    options = ClusterOptions.from_pytest(config).to_arguments()
    if config.getoption("--base-image"):
        options += ["--base-image", str(config.getoption("--base-image"))]
    for binary in config.getoption("--helm-bin")[:1]:
        options += ["--helm-bin", str(binary)]
    return options


def test_a_wrong_expectation_fails_reproduce_and_names_it(
    app_images: AppImages, kube: Kube, pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    scenario_file = tmp_path / "wrong.scenario.yaml"
    scenario_file.write_text(WRONG)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "e2e.reproduce",
            str(scenario_file),
            "--repeat",
            "2",
            "--artifacts",
            str(tmp_path / "artifacts"),
            *_harness_options(pytestconfig),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    out = result.stdout
    # A failed run keeps its namespace for inspection (--keep-cluster): not these.
    for namespace in re.findall(r"namespace (\S+) kept for inspection", out):
        kube.delete_namespace(namespace)
    assert result.returncode == 1, out[-4000:] + result.stderr[-4000:]
    assert "VERDICT: FAIL: failed: release, serves;" in out, out[-3000:]
    assert "FAIL  serves" in out
    assert "FAIL  release" in out
    assert "PASS  helm" in out
    assert "PASS  gatedPods" in out
    # --repeat: each expectation's pass count over the two runs, and the figures' spread.
    summary = out[out.index("== 2 run(s)") :].split("\n\n")[0].splitlines()[2:]
    counts = {line.split()[0]: line.split()[1] for line in summary}
    assert counts == {"helm": "2/2", "gatedPods": "2/2", "release": "0/2", "serves": "0/2"}
    assert len(list((tmp_path / "artifacts").glob("*/timeline.svg"))) == 2
    for run in sorted((tmp_path / "artifacts").glob("*/collected")):
        files = {path.name: path.read_text() for path in run.iterdir()}
        assert sorted(files) == [
            "01-podLogs.txt",
            "02-describe.txt",
            "03-helm.txt",
            "04-command.txt",
        ]
        assert "== demo-upgrade-gate-" in files["01-podLogs.txt"]
        assert "kind: Deployment" in files["02-describe.txt"]
        assert "deployed" in files["03-helm.txt"]
        assert files["03-helm.txt"].endswith("exit 0\n")
        assert re.search(r"^demo in ug-wrong-expectation", files["04-command.txt"], re.M)
    assert len(list((tmp_path / "artifacts").glob("*/collected"))) == 2


def from_release(target: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "e2e.reproduce",
            "--from-release",
            target,
            "--kubeconfig",
            str(kubeconfig),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_from_release_starts_a_file_from_what_is_deployed(stage: Stage, tmp_path: Path) -> None:
    stage.install("v1", replicaCount=2, gate={"holdSeconds": 150})
    pods = [p.metadata.name for p in stage.app_pods()]
    assert len(pods) == 2, pods
    busy = 1
    stage.start_operation(pods[busy], 60)
    out = tmp_path / "from-release.scenario.yaml"
    target = f"{stage.namespace}/{stage.release}"
    result = from_release(
        target, stage.kube.kubeconfig, "--helm-bin", str(stage.helm.binary), "-o", str(out)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    print(f"\n{out}:\n{text}")
    raw = load(out).raw
    spec = raw["spec"]
    assert spec["release"]["image"] == "v1"
    assert spec["release"]["replicas"] == 2
    (work,) = spec["work"]
    assert work["pods"] == [busy]
    assert 0 < work["seconds"] <= 60
    values = spec["release"]["values"]
    assert values["gate"]["holdSeconds"] == 150  # the user's own
    assert values["app"]["preStopSleepSeconds"] == 1  # the harness's, as the user gave them
    assert "image" not in values
    assert "replicaCount" not in values
    assert spec["upgrade"] == {"image": "v2"}
    assert raw["metadata"]["description"].startswith(
        f"Started from the release {target} at revision 1 (deployed), read "
    )
    assert f"({pods[busy]})" in text
    # Without -o: the same file, on stdout.
    printed = from_release(target, stage.kube.kubeconfig, "--helm-bin", str(stage.helm.binary))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# yaml-language-server:")


def test_from_release_refuses_a_release_that_does_not_exist(
    kube: Kube, namespace: str, helm: Helm
) -> None:
    result = from_release(f"{namespace}/absent", kube.kubeconfig, "--helm-bin", str(helm.binary))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"python -m e2e.reproduce: --from-release {namespace}/absent: no release absent in "
        f"namespace {namespace} ({kube.kubeconfig})"
    ]
