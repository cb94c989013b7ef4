"""``python -m e2e.reproduce``, end to end: a wrong expectation fails it, by name.

The command runs as developers run it, in its own process, on the session's
cluster (reused, kept), with a file from outside the repository: an idle
upgrade that expects what did not happen (v1 served after an upgrade to v2,
revision 5). Played twice (``--repeat 2``), it must exit 1, name exactly
those expectations, and count their passes; its collectors (``catch``, since it
fails, and ``finally``) leave their files.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cluster.options import ClusterOptions
from e2e.images import AppImages
from e2e.kube import Kube

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
