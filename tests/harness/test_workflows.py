"""The GitHub workflows, read as GitHub reads them: what must hold of every job before it runs.

A failure must be able to fail: before, every `run:` step ran under GitHub's default
`bash -e {0}`, so `tox ... | tee log` passed whatever tox did, and the e2e job was green with
every scenario in error.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from e2e.cluster import tools
from e2e.rehearsal.workflows import Workflow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DIGEST = re.compile(r"^kindest/node:v(?P<minor>\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}$")


def load(name: str) -> Workflow:
    return Workflow.load(ROOT / ".github" / "workflows" / f"{name}.yml")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_fails_when_a_command_in_a_pipe_fails(path: Path) -> None:
    """`shell: bash` is GitHub's `bash --noprofile --norc -eo pipefail {0}`."""
    workflow = Workflow.load(path)
    default = (workflow.data.get("defaults") or {}).get("run", {}).get("shell")
    for job_id, job in workflow.jobs.items():
        shell = (job.get("defaults") or {}).get("run", {}).get("shell", default)
        for step in job.get("steps", []):
            if "run" in step:
                assert step.get("shell", shell) == "bash", f"{path.name} {job_id}: {step}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_command_substitution_hides_its_failure_in_an_echo(path: Path) -> None:
    """`echo "X=$(cmd)" >> "$GITHUB_ENV"` succeeds when cmd fails; an assignment does not."""
    hidden = re.compile(r"\becho\b[^\n]*\$\(")
    assert not hidden.findall(path.read_text()), path.name


def test_the_e2e_job_runs_every_supported_minor_by_digest_with_a_kubectl_of_its_own() -> None:
    workflow = load("e2e")
    cells = workflow.cells("scenarios")
    assert {c["helm"] for c in cells} == {"helm3", "helm4"}
    minors = set()
    for cell in cells:
        image = DIGEST.fullmatch(cell["node-image"])
        assert image is not None, cell["node-image"]
        assert image["minor"] == cell["kubernetes"]
        kubectl = tools.KUBECTL_FOR[cell["kubectl"]]
        kubectl_minor = int(kubectl.version.split(".")[1])
        assert abs(kubectl_minor - int(cell["kubernetes"].split(".")[1])) <= 1, cell
        minors.add(cell["kubernetes"])
    assert minors == {"1.35", "1.36", "1.37"}


def test_the_e2e_job_runs_three_nodes_so_the_multinode_scenarios_run() -> None:
    job = load("e2e").job("scenarios")
    assert job["env"]["KIND_NODES"] == "3"
    test_step = next(s for s in job["steps"] if s.get("name") == "tox -e e2e on kind")
    assert '--kind-nodes "$KIND_NODES"' in test_step["run"]


def test_ci_runs_every_tox_env_a_person_runs_before_pushing() -> None:
    # tox's env_list but the two on a cluster: e2e.yml runs e2e, ci/test runs smoke too.
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    listed = {e.strip() for e in tox["tox"]["env_list"].split(",")}
    envs = {cell["env"] for cell in load("ci").cells("test")}
    assert envs == listed - {"e2e", "smoke"}


def test_setup_go_asks_for_a_supported_go() -> None:
    for name in ("ci", "e2e", "release"):
        assert load(name).asked_versions("actions/setup-go", "go-version") <= {"1.26", "1.27"}


def test_a_release_is_built_only_after_ci_and_e2e_pass_on_its_commit() -> None:
    workflow = load("release")
    assert workflow.called("ci") is not None
    assert workflow.called("e2e") is not None
    assert workflow.needed("release") == ["ci", "e2e", "release"]
    for name in ("ci", "e2e"):
        assert "workflow_call" in load(name).data["on"]
