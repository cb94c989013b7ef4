"""Scenario files are refused before anything touches a cluster, naming the line and the field.

No cluster here: the loader, the schema, pytest's collection of a bad file, and
``python -m e2e.reproduce`` on a bad file (which must not even look for a cluster).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from e2e.playbook.load import SCHEMA_PATH, ScenarioFileError, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "e2e" / "scenarios" / "files").glob("*.scenario.yaml"))

# Line numbers below refer to this file.
GOOD = """\
apiVersion: upgrade-gate/v1alpha1
kind: Scenario
metadata:
  name: sample
spec:
  duration: 60
  release:
    image: v1
    replicas: 2
    values:
      gate: {timeoutSeconds: 30}
  work:
    - pods: [0, 1]
      seconds: 5
      at: 0
  upgrade:
    at: 1
    image: v2
  events:
    - at: 10
      deletePod: {pod: 1}
    - after: upgrade
      check: {serves: v2}
  expect:
    helm: succeeded
    noOperationCutOff: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sample.scenario.yaml"
    path.write_text(text)
    return path


def refusal(tmp_path: Path, text: str) -> list[str]:
    """The problems named, each as 'LINE: path: message' (the file name dropped)."""
    path = write(tmp_path, text)
    with pytest.raises(ScenarioFileError) as caught:
        load(path)
    lines = str(caught.value).splitlines()
    assert lines, "a refusal names its problems"
    assert all(line.startswith(f"{path}:") for line in lines), lines
    return [line.removeprefix(f"{path}:") for line in lines]


def test_the_sample_loads(tmp_path: Path) -> None:
    play = load(write(tmp_path, GOOD))
    assert play.replicas == 2
    assert [s.action for s in play.steps] == ["upgrade", "deletePod", "check"]
    assert play.main.args == {"image": "v2"}
    assert play.work[0].pods == (0, 1)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_file_loads(path: Path) -> None:
    play = load(path)
    assert play.name == path.name.removesuffix(".scenario.yaml")
    assert path.read_text().startswith("# yaml-language-server: $schema=")


def test_an_unknown_key_is_refused_with_its_line_and_path(tmp_path: Path) -> None:
    text = GOOD.replace("      seconds: 5\n", "      secnds: 5\n")
    problems = refusal(tmp_path, text)
    assert "14: spec.work[0].secnds: unknown key 'secnds'" in problems[-1]
    assert any("spec.work[0]: missing required key 'seconds'" in p for p in problems)


def test_a_negative_duration_is_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, GOOD.replace("seconds: 5", "seconds: -5"))
    assert problems == ["14: spec.work[0].seconds: -5 is less than or equal to the minimum of 0"]


def test_an_event_at_a_pod_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: 2}"))
    assert problems == [
        "21: spec.events[0].deletePod.pod: pod 2 does not exist: "
        "the release has 2 pod(s) then (0 to 1)"
    ]


def test_work_on_a_pod_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, GOOD.replace("pods: [0, 1]", "pods: [0, 5]"))
    assert problems == [
        "13: spec.work[0].pods[1]: pod 5 does not exist: the release has 2 pod(s) then (0 to 1)"
    ]


def test_a_scale_event_makes_more_pods_exist_later(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    - at: 10\n      deletePod: {pod: 1}\n",
        "    - at: 5\n      scale: {replicas: 4}\n    - at: 10\n      deletePod: {pod: 3}\n",
    )
    assert [s.action for s in load(write(tmp_path, text)).steps][:3] == [
        "upgrade",
        "scale",
        "deletePod",
    ]


def test_a_time_beyond_the_run_is_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, GOOD.replace("    - at: 10\n", "    - at: 90\n"))
    assert problems == ["20: spec.events[0].at: 90 is beyond the run (spec.duration: 60 s)"]


def test_two_actions_in_one_event_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      deletePod: {pod: 1}\n", "      deletePod: {pod: 1}\n      scale: {replicas: 1}\n"
    )
    problems = refusal(tmp_path, text)
    assert problems == ["20: spec.events[0]: one action per event, found deletePod and scale"]


def test_an_unbound_name_is_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, GOOD.replace("after: upgrade", "after: upgrad"))
    assert problems == [
        "22: spec.events[1].after: no helm command is named 'upgrad'; named: upgrade"
    ]


def test_chart_values_the_chart_refuses_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("gate: {timeoutSeconds: 30}", "gate: {timeoutSecnds: 30}")
    problems = refusal(tmp_path, text)
    assert problems == [
        "11: spec.release.values.gate.timeoutSecnds: the chart has no value 'timeoutSecnds' "
        "(chart/values.schema.json)"
    ]


def test_work_longer_than_the_app_accepts_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("gate: {timeoutSeconds: 30}", "app: {operationMaxSeconds: 4}")
    problems = refusal(tmp_path, text)
    assert problems == [
        "14: spec.work[0].seconds: 5 s is longer than the app accepts (app.operationMaxSeconds: 4)"
    ]


def test_a_rollback_to_a_revision_not_yet_there_is_refused(tmp_path: Path) -> None:
    problems = refusal(
        tmp_path, GOOD.replace("    image: v2\n  events:", "    rollback: 1\n  events:")
    )
    assert problems == [
        "18: spec.upgrade.rollback: revision 1 is not an earlier one: "
        "the release is at revision 1 when the run starts",
        # A rollback's default name is rollback.
        "22: spec.events[1].after: no helm command is named 'upgrade'; named: rollback",
    ]


def test_an_arrival_rate_needs_its_end(tmp_path: Path) -> None:
    problems = refusal(tmp_path, GOOD.replace("      at: 0\n", "      at: 0\n      every: 1\n"))
    assert problems[0].startswith("13: spec.work[0]: `every` and `until` go together")


def test_bad_yaml_and_wrong_kinds_are_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, GOOD.replace("kind: Scenario", "kind: Scenario\nkind: Test"))
    assert problems[0].startswith("3: (top): not valid YAML:")
    assert "duplicate key" in problems[0]
    problems = refusal(tmp_path, GOOD.replace("v1alpha1", "v1"))
    assert problems == ["1: apiVersion: 'upgrade-gate/v1alpha1' was expected"]


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_every_key_of_the_schema_has_its_python_and_back() -> None:
    from e2e.playbook.checks import CONDITIONS, EXPECTATIONS
    from e2e.playbook.engine import STEPS
    from e2e.playbook.load import ACTIONS

    defs = json.loads(SCHEMA_PATH.read_text())["$defs"]
    assert set(defs["expect"]["properties"]) == {*EXPECTATIONS, "byHelm"}
    assert set(defs["check"]["properties"]) == set(CONDITIONS)
    assert set(ACTIONS) == set(STEPS)
    assert set(ACTIONS) <= set(defs["event"]["properties"])


def test_reproduce_refuses_a_bad_file_before_looking_for_a_cluster(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("    - at: 10\n", "    - at: 90\n"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "e2e.reproduce",
            str(bad),
            "--cluster",
            "existing",
            "--kubeconfig",
            str(tmp_path / "no-such-kubeconfig"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused, nothing was run" in result.stderr
    assert f"{bad}:20: spec.events[0].at: 90 is beyond the run" in result.stderr
    assert "kubeconfig" not in result.stdout + result.stderr


def collect(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest --collect-only`` in ``where``, with the repository importable."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=where,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_pytest_reports_a_bad_file_as_a_collection_error(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("seconds: 5", "seconds: -5"))
    result = collect(tmp_path, "-p", "e2e.playbook.plugin", str(bad))
    assert result.returncode == 2, result.stdout  # interrupted: errors during collection
    assert "ERROR collecting sample.scenario.yaml" in result.stdout
    assert "sample.scenario.yaml:14: spec.work[0].seconds: -5 is less than" in result.stdout


def reproduce(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2e.reproduce", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_reproduce_prints_the_schema_for_files_kept_elsewhere(tmp_path: Path) -> None:
    result = reproduce("--schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema == json.loads(SCHEMA_PATH.read_text())
    # A file kept outside the repository validates against what it printed.
    kept = YAML(typ="safe").load(write(tmp_path, GOOD).read_text())
    jsonschema.Draft202012Validator(schema).validate(kept)


def test_reproduce_takes_a_file_of_any_name(tmp_path: Path) -> None:
    elsewhere = tmp_path / "incident-2026-12-07.yml"
    elsewhere.write_text(GOOD)
    result = reproduce("--check", str(elsewhere))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{elsewhere}: ok (sample:")


def test_reproduce_without_a_file_says_what_it_needs() -> None:
    result = reproduce()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m e2e.reproduce: error: a scenario file is needed (or --schema)"
    )


# Each new key's bad values: refused with the line and the field (the line after GOOD's last).
FATE_LINE = len(GOOD.splitlines()) + 1


@pytest.mark.parametrize(
    ("added", "problem"),
    [
        (
            "operations: {cutOff: -1}",
            "spec.expect.operations.cutOff: -1 is not a count: a whole number >= 0, or "
            "atLeast/atMost",
        ),
        (
            "operations: {succeeded: 1.5}",
            "spec.expect.operations.succeeded: 1.5 is not a count",
        ),
        (
            "operations: {lost: 1}",
            "spec.expect.operations.lost: unknown key 'lost'; expected one of: cutOff, drained, "
            "failed, running, succeeded",
        ),
        ("operations: {}", "spec.expect.operations: empty: say at least one thing"),
        (
            "operations: {cutOff: {atLeast: 3, atMost: 1}}",
            "spec.expect.operations.cutOff: atLeast 3 is more than atMost 1",
        ),
        (
            "operations: {cutOff: {atleast: 3}}",
            "spec.expect.operations.cutOff: unknown key 'atleast'; expected one of: atLeast, "
            "atMost",
        ),
        (
            "operations: {cutOff: {atLeast: -1}}",
            "spec.expect.operations.cutOff.atLeast: -1 is less than the minimum of 0",
        ),
        (
            "operations: {cutOff: {atMost: -1}}",
            "spec.expect.operations.cutOff.atMost: -1 is less than the minimum of 0",
        ),
        (
            "operations: {drained: {}}",
            "spec.expect.operations.drained: {} is not a count: a whole number >= 0, or "
            "atLeast/atMost",
        ),
        (
            "operations: {running: true}",
            "spec.expect.operations.running: true is not a count: a whole number >= 0, or "
            "atLeast/atMost",
        ),
        ("arrivals: {}", "spec.expect.arrivals: empty: say at least one thing"),
        (
            "arrivals: {all: {accepted: -1}}",
            "spec.expect.arrivals.all.accepted: -1 is not a count: a whole number >= 0, or "
            "atLeast/atMost",
        ),
        (
            "arrivals: {before: {unanswered: {most: 1}}}",
            "spec.expect.arrivals.before.unanswered: unknown key 'most'; expected one of: "
            "atLeast, atMost",
        ),
        (
            "arrivals: {sometime: {refused: 0}}",
            "spec.expect.arrivals.sometime: unknown key 'sometime'; expected one of: after, all, "
            "before, during",
        ),
        ("arrivals: {after: {}}", "spec.expect.arrivals.after: empty: say at least one thing"),
        (
            "arrivals: {after: {rejected: 0}}",
            "spec.expect.arrivals.after.rejected: unknown key 'rejected'; expected one of: "
            "accepted, refused, unanswered",
        ),
        (
            "arrivals: {during: {refused: {atLeast: 2, atMost: 0}}}",
            "spec.expect.arrivals.during.refused: atLeast 2 is more than atMost 0",
        ),
        (
            "byHelm: {helm5: {helm: failed}}",
            "spec.expect.byHelm.helm5: unknown key 'helm5'; expected one of: helm3, helm4",
        ),
        ("byHelm: {helm4: {}}", "spec.expect.byHelm.helm4: empty: say at least one thing"),
        (
            "byHelm: {helm4: {hepl: failed}}",
            "spec.expect.byHelm.helm4.hepl: unknown key 'hepl'",
        ),
        (
            "byHelm: {helm4: {byHelm: {helm3: {helm: failed}}}}",
            "spec.expect.byHelm.helm4.byHelm: not allowed within byHelm",
        ),
        (
            "byHelm: {helm3: {operations: {cutOff: {atLeast: 2, atMost: 1}}}}",
            "spec.expect.byHelm.helm3.operations.cutOff: atLeast 2 is more than atMost 1",
        ),
        ("byHelm: {}", "spec.expect.byHelm: empty: say at least one thing"),
        (
            "byHelm: {helm4: {helm: passed}}",
            "spec.expect.byHelm.helm4.helm: 'passed' is not one of ['succeeded', 'failed']",
        ),
        (
            "byHelm: {helm4: {arrivals: {after: {refused: {atLeast: 3, atMost: 1}}}}}",
            "spec.expect.byHelm.helm4.arrivals.after.refused: atLeast 3 is more than atMost 1",
        ),
    ],
)
def test_bad_counts_of_fates_are_refused_with_line_and_field(
    tmp_path: Path, added: str, problem: str
) -> None:
    problems = refusal(tmp_path, f"{GOOD}    {added}\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{FATE_LINE}: {problem}"), problems


def test_counts_of_fates_load(tmp_path: Path) -> None:
    text = (
        f"{GOOD}    operations: {{cutOff: 0, succeeded: {{atLeast: 1}}}}\n"
        "    arrivals: {all: {unanswered: 0}, after: {refused: 0, accepted: {atLeast: 1}}}\n"
    )
    play = load(write(tmp_path, text))
    assert play.expect["operations"] == {"cutOff": 0, "succeeded": {"atLeast": 1}}
    assert play.expect["arrivals"]["after"] == {"refused": 0, "accepted": {"atLeast": 1}}


def test_a_bad_count_exits_2_from_reproduce(tmp_path: Path) -> None:
    bad = write(tmp_path, f"{GOOD}    operations: {{cutOff: -1}}\n")
    result = reproduce("--check", str(bad))
    assert result.returncode == 2
    assert f"{bad}:{FATE_LINE}: spec.expect.operations.cutOff: -1 is not a count" in result.stderr


def test_expectations_by_helm_take_the_place_of_the_shared_ones(tmp_path: Path) -> None:
    text = GOOD.replace("spec:\n", "spec:\n  helm: each\n", 1) + (
        "    byHelm:\n      helm4: {helm: failed, hookExits: [1]}\n"
    )
    play = load(write(tmp_path, text))
    assert play.expect_for(3) == {"helm": "succeeded", "noOperationCutOff": True}
    assert play.expect_for(4) == {"helm": "failed", "noOperationCutOff": True, "hookExits": [1]}


def test_expectations_for_a_helm_that_never_plays_the_file_are_refused(tmp_path: Path) -> None:
    text = (
        GOOD.replace("spec:\n", "spec:\n  helm: 3\n", 1) + "    byHelm: {helm4: {helm: failed}}\n"
    )
    problems = refusal(tmp_path, text)
    assert problems == [
        f"{FATE_LINE + 1}: spec.expect.byHelm.helm4: never applies: the file plays only with "
        "Helm 3 (spec.helm)"
    ]


# Pod roles. WITH_NAME gives the first work the name "exporter" (one line more than GOOD).
WITH_NAME = GOOD.replace("    - pods: [0, 1]\n", "    - pods: [0, 1]\n      as: exporter\n")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {replacementOf: 5}}"),
            "21: spec.events[0].deletePod.pod.replacementOf: pod 5 does not exist: the release "
            "has 2 pod(s) when the run starts",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {named: nobody}}"),
            "21: spec.events[0].deletePod.pod.named: no work is named 'nobody' (work `as`: none)",
        ),
        (
            WITH_NAME.replace("      at: 0\n", "      at: 12\n").replace(
                "deletePod: {pod: 1}", "deletePod: {pod: {named: exporter}}"
            ),
            "22: spec.events[0].deletePod.pod.named: 'exporter' names a pod only once its work "
            "starts, at 12",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {busiest: false}}"),
            "21: spec.events[0].deletePod.pod.busiest: busiest: true is the only value",
        ),
        (
            WITH_NAME.replace(
                "deletePod: {pod: 1}", "deletePod: {pod: {busiest: true, named: exporter}}"
            ),
            "22: spec.events[0].deletePod.pod: one role per pod, found busiest and named",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {}}"),
            "21: spec.events[0].deletePod.pod: one role per pod, found nothing",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {buziest: true}}"),
            "21: spec.events[0].deletePod.pod.buziest: unknown key 'buziest'; a pod role is one "
            "of: named, replacementOf, onNode, busiest",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: one}"),
            '21: spec.events[0].deletePod.pod: "one" is not a pod index or a pod role',
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {onNode: Worker_2}}"),
            '21: spec.events[0].deletePod.pod.onNode: "Worker_2" is not a node name',
        ),
        (
            GOOD.replace("    - pods: [0, 1]\n", "    - pods: everything\n"),
            '13: spec.work[0].pods: "everything" is not a list of pod indexes, `all`, `spread` '
            "or a pod role",
        ),
        (
            GOOD.replace("    - pods: [0, 1]\n", "    - pods: {named: me}\n      as: me\n"),
            "13: spec.work[0].pods.named: 'me' is this work's own name",
        ),
        (
            WITH_NAME.replace(
                "  upgrade:\n",
                "    - pods: all\n      seconds: 1\n      as: exporter\n  upgrade:\n",
            ),
            "19: spec.work[1].as: 'exporter' names earlier work",
        ),
        (
            GOOD.replace("      at: 0\n", "      at: 0\n      as: 1st\n"),
            "16: spec.work[0].as: '1st' does not match '^[A-Za-z][A-Za-z0-9_-]{0,40}$'",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {named: 'a b'}}"),
            "21: spec.events[0].deletePod.pod.named: 'a b' does not match "
            "'^[A-Za-z][A-Za-z0-9_-]{0,40}$'",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {replacementOf: -1}}"),
            "21: spec.events[0].deletePod.pod.replacementOf: -1 is less than the minimum of 0",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {replacementOf: 1.5}}"),
            "21: spec.events[0].deletePod.pod.replacementOf: 1.5 is not of type 'integer'",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {onNode: 5}}"),
            "21: spec.events[0].deletePod.pod.onNode: 5 is not of type 'string'",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "killApp: {pod: all}"),
            '21: spec.events[0].killApp.pod: "all" is not a pod index or a pod role (named, '
            "replacementOf, onNode, busiest)",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "killApp: {pod: {busiest: yes please}}"),
            "21: spec.events[0].killApp.pod.busiest: busiest: true is the only value",
        ),
        (
            WITH_NAME.replace("deletePod: {pod: 1}", "killApp: {pod: {named: exported}}"),
            "22: spec.events[0].killApp.pod.named: no work is named 'exported' "
            "(work `as`: exporter)",
        ),
        (
            GOOD.replace("    - pods: [0, 1]\n", "    - pods: {busiest: true, onNode: w}\n"),
            "13: spec.work[0].pods: one role per pod, found busiest and onNode",
        ),
        (
            WITH_NAME.replace("      at: 0\n", "      at: 5\n").replace(
                "  upgrade:\n", "    - pods: {named: exporter}\n      seconds: 1\n  upgrade:\n"
            ),
            "17: spec.work[1].pods.named: 'exporter' names a pod only once its work starts, at 5",
        ),
    ],
)
def test_bad_pod_roles_are_refused_with_line_and_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    problems = refusal(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (
            "notFenced: none",
            'spec.events[1].check.notFenced: "none" is not a list of pod indexes, `all`, '
            "`spread` or a pod role (named, replacementOf, onNode, busiest)",
        ),
        (
            "acceptsWork: 2",
            "spec.events[1].check.acceptsWork: 2 is not a list of pod indexes, `all`, `spread` "
            "or a pod role (named, replacementOf, onNode, busiest)",
        ),
        (
            "acceptsWork: [0, 0]",
            "spec.events[1].check.acceptsWork: [0, 0] is not a list of pod indexes, `all`, "
            "`spread` or a pod role (named, replacementOf, onNode, busiest)",
        ),
        (
            "notFenced: [0, 3]",
            "spec.events[1].check.notFenced[1]: pod 3 does not exist: the release has 2 pod(s) "
            "then (0 to 1)",
        ),
        (
            "acceptsWork: [-1]",
            "spec.events[1].check.acceptsWork: [-1] is not a list of pod indexes, `all`, "
            "`spread` or a pod role (named, replacementOf, onNode, busiest)",
        ),
        (
            "notFenced: {named: nobody}",
            "spec.events[1].check.notFenced.named: no work is named 'nobody' (work `as`: none)",
        ),
        (
            "acceptsWork: {replacementOf: 3}",
            "spec.events[1].check.acceptsWork.replacementOf: pod 3 does not exist: the release "
            "has 2 pod(s) when the run starts",
        ),
        (
            "acceptsWork: {onNode: Node_1}",
            'spec.events[1].check.acceptsWork.onNode: "Node_1" is not a node name '
            "(a-z, 0-9, '-' and '.')",
        ),
        (
            "notFenced: {busiest: true, replacementOf: 0}",
            "spec.events[1].check.notFenced: one role per pod, found busiest and replacementOf",
        ),
    ],
)
def test_bad_pods_to_find_unfenced_or_accepting_work_are_refused_with_line_and_field(
    tmp_path: Path, condition: str, problem: str
) -> None:
    text = GOOD.replace("check: {serves: v2}", f"check: {{{condition}}}")
    problems = refusal(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"23: {problem}"), problems


@pytest.mark.parametrize("action", ["deletePod", "killApp"])
def test_a_pod_index_written_as_a_float_is_refused(tmp_path: Path, action: str) -> None:
    """JSON Schema takes `5.0` for an integer; `pod: 1.0` loaded (the pod exists) and the run
    failed on it mid-way, `list indices must be integers`; `pod: 5.0` escaped the check that
    refuses `pod: 5` (of 2)."""
    whole = refusal(tmp_path, GOOD.replace("deletePod: {pod: 1}", f"{action}: {{pod: 5}}"))
    assert whole == [
        f"21: spec.events[0].{action}.pod: pod 5 does not exist: the release has 2 pod(s) then "
        "(0 to 1)"
    ]
    for index in ("1.0", "5.0"):
        text = GOOD.replace("deletePod: {pod: 1}", f"{action}: {{pod: {index}}}")
        assert refusal(tmp_path, text) == [
            f"21: spec.events[0].{action}.pod: {index} is not a pod index or a pod role "
            "(named, replacementOf, onNode, busiest)"
        ]


def test_pod_roles_load_where_pods_are_named(tmp_path: Path) -> None:
    text = WITH_NAME.replace("deletePod: {pod: 1}", "deletePod: {pod: {named: exporter}}").replace(
        "    - after: upgrade\n      check: {serves: v2}\n",
        "    - after: upgrade\n      check: {serves: v2, notFenced: {replacementOf: 1}}\n"
        "    - at: 20\n      check: {fenced: {onNode: worker2}, acceptsWork: {busiest: true}}\n",
    )
    play = load(write(tmp_path, text))
    assert play.work[0].name == "exporter"
    assert [s.args for s in play.steps if s.action == "deletePod"] == [
        {"pod": {"named": "exporter"}}
    ]


def test_every_key_of_the_schema_is_in_the_format_reference() -> None:
    """docs/scenarios.md says what each key means: a key added to the schema alone fails here."""
    import re

    schema = json.loads(SCHEMA_PATH.read_text())
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    reference = (ROOT / "docs" / "scenarios.md").read_text()
    missing = sorted(k for k in keys if not re.search(rf"(?<![A-Za-z]){k}(?![A-Za-z])", reference))
    assert not missing, f"keys of the schema not in docs/scenarios.md: {missing}"


@pytest.mark.parametrize(
    ("objects", "problem"),
    [
        (
            "[{kind: Deployment, name: x}]",
            "spec.events[1].check.objects[0]: say one of matches, path or absent (found none)",
        ),
        (
            "[{kind: Deployment, name: x, matches: {a: 1}, absent: true}]",
            "spec.events[1].check.objects[0]: say one of matches, path or absent "
            "(found matches and absent)",
        ),
        (
            "[{kind: Deployment, name: x, path: [spec]}]",
            "spec.events[1].check.objects[0].path: path needs equals or sameAs (found neither)",
        ),
        (
            "[{kind: Deployment, name: x, matches: {a: 1}, equals: 2}]",
            "spec.events[1].check.objects[0].equals: equals needs a path",
        ),
        (
            "[{kind: Widget, name: x, absent: true}]",
            "spec.events[1].check.objects[0].kind: Widget needs its apiVersion",
        ),
        (
            "[{kind: deployment, name: x, absent: true}]",
            'spec.events[1].check.objects[0].kind: "deployment" is not a kind (as Deployment)',
        ),
        (
            "[{kind: Deployment, name: x, sameAs: end, path: [a]}]",
            "spec.events[1].check.objects[0].sameAs: 'start' was expected",
        ),
        ("[]", "spec.events[1].check.objects: [] should be non-empty"),
        (
            "[{apiVersion: Apps/V1, kind: Deployment, name: x, absent: true}]",
            'spec.events[1].check.objects[0].apiVersion: "Apps/V1" is not an apiVersion '
            "(as apps/v1)",
        ),
        (
            "[{kind: Deployment, name: '', absent: true}]",
            "spec.events[1].check.objects[0].name: '' should be non-empty",
        ),
        (
            "[{kind: Deployment, absent: true}]",
            "spec.events[1].check.objects[0]: missing required key 'name'",
        ),
        (
            "[{name: x, absent: true}]",
            "spec.events[1].check.objects[0]: missing required key 'kind'",
        ),
        (
            "[{kind: Deployment, name: x, absent: true, namespace: y}]",
            "spec.events[1].check.objects[0].namespace: unknown key 'namespace'; expected one "
            "of: absent, apiVersion, equals, in, kind, matches, name, path, sameAs",
        ),
        (
            "[{kind: Deployment, name: x, matches: {}}]",
            "spec.events[1].check.objects[0].matches: empty: say at least one thing",
        ),
        (
            "[{kind: Deployment, name: x, matches: [a]}]",
            "spec.events[1].check.objects[0].matches: ['a'] is not of type 'object'",
        ),
        (
            "[{kind: Deployment, name: x, path: [], equals: 1}]",
            "spec.events[1].check.objects[0].path: [] should be non-empty",
        ),
        (
            "[{kind: Deployment, name: x, path: [spec, 1.5], equals: 1}]",
            "spec.events[1].check.objects[0].path[1]: 1.5 is not of type 'string', 'integer'",
        ),
        (
            "[{kind: Deployment, name: x, absent: false}]",
            "spec.events[1].check.objects[0].absent: True was expected",
        ),
        (
            "[{kind: Deployment, name: x, matches: {a: 1}, path: [a], equals: 1}]",
            "spec.events[1].check.objects[0]: say one of matches, path or absent "
            "(found matches and path)",
        ),
        (
            "[{kind: Deployment, name: x, path: [a], equals: 1, sameAs: start}]",
            "spec.events[1].check.objects[0].path: path needs equals or sameAs "
            "(found equals and sameAs)",
        ),
        (
            "[{kind: Deployment, name: x, absent: true, sameAs: start}]",
            "spec.events[1].check.objects[0].sameAs: sameAs needs a path",
        ),
        (
            "[{kind: Deployment, name: x, absent: true, in: helm}]",
            "spec.events[1].check.objects[0].in: 'helm' is not one of ['cluster', 'manifest']",
        ),
    ],
)
def test_bad_object_assertions_are_refused_with_line_and_field(
    tmp_path: Path, objects: str, problem: str
) -> None:
    text = GOOD.replace("check: {serves: v2}", f"check: {{objects: {objects}}}")
    problems = refusal(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"23: {problem}"), problems


def test_object_assertions_load(tmp_path: Path) -> None:
    objects = (
        "[{kind: Deployment, name: '{release}-upgrade-gate', path: [spec, template, metadata, "
        "annotations, upgrade-gate/template-hash], sameAs: start}, "
        "{apiVersion: example.com/v1, kind: Widget, name: w, absent: true}]"
    )
    play = load(
        write(tmp_path, GOOD.replace("check: {serves: v2}", f"check: {{objects: {objects}}}"))
    )
    (check,) = [s for s in play.steps if s.action == "check"]
    assert check.args["objects"][0]["sameAs"] == "start"


# Fault actions only kind can take: refused elsewhere before anything runs.
RESTART = GOOD.replace(
    "    - at: 10\n      deletePod: {pod: 1}\n",
    "    - at: 10\n      restartApiServer: {downSeconds: 5}\n",
)


def test_a_restart_of_the_api_server_loads_and_says_where_it_is(tmp_path: Path) -> None:
    play = load(write(tmp_path, RESTART))
    assert play.refused_on("kind") is None
    assert play.refused_on("existing") == (
        f"{play.path}: spec.events[0].restartApiServer: the existing cluster cannot take that "
        "action (kind can)"
    )


def test_a_negative_time_down_is_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, RESTART.replace("downSeconds: 5", "downSeconds: -1"))
    assert problems == [
        "21: spec.events[0].restartApiServer.downSeconds: -1 is less than the minimum of 0"
    ]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "downSeconds: 5",
            "downSecs: 5",
            "21: spec.events[0].restartApiServer.downSecs: unknown key 'downSecs'; expected one "
            "of: downSeconds",
        ),
        (
            "downSeconds: 5",
            "downSeconds: five",
            "21: spec.events[0].restartApiServer.downSeconds: 'five' is not of type 'number'",
        ),
        (
            "downSeconds: 5",
            "downSeconds: .inf",
            "21: spec.events[0].restartApiServer.downSeconds: inf is not a finite number",
        ),
        (
            "restartApiServer: {downSeconds: 5}",
            "restartApiServer: 5",
            "21: spec.events[0].restartApiServer: 5 is not of type 'object'",
        ),
        (
            "      restartApiServer:",
            "      as: bounce\n      restartApiServer:",
            "21: spec.events[0].as: only upgrade and rollback are named, not restartApiServer",
        ),
        (
            "restartApiServer: {downSeconds: 5}",
            "restartApiServer: {}\n      scale: {replicas: 1}",
            "20: spec.events[0]: one action per event, found restartApiServer and scale",
        ),
    ],
    ids=["unknown-key", "not-a-number", "infinite", "not-a-mapping", "named", "two-actions"],
)
def test_bad_restarts_of_the_api_server_are_refused_with_line_and_field(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    assert old in RESTART
    problems = refusal(tmp_path, RESTART.replace(old, new))
    assert problems == [problem]


def test_reproduce_refuses_a_fault_the_existing_cluster_cannot_take(tmp_path: Path) -> None:
    path, kubeconfig = write(tmp_path, RESTART), tmp_path / "kubeconfig"
    kubeconfig.write_text("")  # a file, never read: the refusal comes first
    result = reproduce(str(path), "--cluster", "existing", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"{path}: spec.events[0].restartApiServer: the existing cluster cannot take that action "
        "(kind can)"
    )


def test_pytest_refuses_a_fault_the_existing_cluster_cannot_take(tmp_path: Path) -> None:
    path, kubeconfig = write(tmp_path, RESTART), tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    result = collect(
        tmp_path,
        *("-p", "conftest"),  # the repository's: the cluster options
        *("--cluster", "existing", "--kubeconfig", str(kubeconfig)),
        str(path),
    )
    assert "ERROR collecting sample.scenario.yaml" in result.stdout, result.stdout
    assert (
        f"{path}: spec.events[0].restartApiServer: the existing cluster cannot take that action"
        in result.stdout
    )


# One bad value of each new key family through the command line: exit 2, the line and the field.
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            GOOD.replace("deletePod: {pod: 1}", "deletePod: {pod: {busiest: false}}"),
            "21: spec.events[0].deletePod.pod.busiest: busiest: true is the only value",
        ),
        (
            GOOD.replace("      at: 0\n", "      at: 0\n      as: 1st\n"),
            "16: spec.work[0].as: '1st' does not match",
        ),
        (
            GOOD.replace("check: {serves: v2}", "check: {acceptsWork: [0, 3]}"),
            "23: spec.events[1].check.acceptsWork[1]: pod 3 does not exist",
        ),
        (
            GOOD.replace("check: {serves: v2}", "check: {objects: [{kind: Deployment, name: x}]}"),
            "23: spec.events[1].check.objects[0]: say one of matches, path or absent",
        ),
        (
            f"{GOOD}    byHelm: {{helm4: {{byHelm: {{helm3: {{helm: failed}}}}}}}}\n",
            f"{FATE_LINE}: spec.expect.byHelm.helm4.byHelm: not allowed within byHelm",
        ),
        (
            f"{GOOD}    arrivals: {{after: {{rejected: 0}}}}\n",
            f"{FATE_LINE}: spec.expect.arrivals.after.rejected: unknown key 'rejected'",
        ),
        (
            RESTART.replace("downSeconds: 5", "downSeconds: -1"),
            "21: spec.events[0].restartApiServer.downSeconds: -1 is less than the minimum of 0",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "drainNode: {node: {nodeOf: 5}}"),
            "21: spec.events[0].drainNode.node.nodeOf: pod 5 does not exist",
        ),
        (
            GOOD.replace("deletePod: {pod: 1}", "stopNode: {node: control-plane}"),
            "21: spec.events[0].stopNode.node: 'control-plane' is the control-plane node",
        ),
    ],
    ids=[
        "pod-role",
        "work-as",
        "check-pods",
        "objects",
        "by-helm",
        "arrivals",
        "restart",
        "node-of",
        "control-plane",
    ],
)
def test_a_bad_value_of_each_new_key_exits_2_from_the_loader_and_reproduce(
    tmp_path: Path, text: str, problem: str
) -> None:
    bad = write(tmp_path, text)
    for module in ("e2e.playbook.load", "e2e.reproduce --check"):
        done = subprocess.run(
            [sys.executable, "-m", *module.split(), str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode == 2, (module, done.stdout + done.stderr)
        assert f"{bad}:{problem}" in done.stderr, (module, done.stderr)


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ("[]", "spec.events[1].check.history: [] should be non-empty"),
        ("[{}]", "spec.events[1].check.history[0]: empty: say at least one thing"),
        (
            "[{revision: 0}]",
            "spec.events[1].check.history[0].revision: 0 is less than the minimum of 1",
        ),
        (
            "[{revision: 1.0}]",
            "spec.events[1].check.history[0].revision: 1.0 is not of type 'integer'",
        ),
        ("[{status: done}]", "spec.events[1].check.history[0].status: 'done' is not one of"),
        (
            "[{description: ''}]",
            "spec.events[1].check.history[0].description: '' should be non-empty",
        ),
        (
            "[{revision: 1, chart: x}]",
            "spec.events[1].check.history[0].chart: unknown key 'chart'; expected one of: "
            "description, revision, status",
        ),
        ("{revision: 1}", "spec.events[1].check.history: {'revision': 1} is not of type 'array'"),
    ],
)
def test_bad_history_assertions_are_refused_with_line_and_field(
    tmp_path: Path, history: str, problem: str
) -> None:
    text = GOOD.replace("check: {serves: v2}", f"check: {{history: {history}}}")
    problems = refusal(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"23: {problem}"), problems
    result = reproduce("--check", str(tmp_path / "sample.scenario.yaml"))
    assert result.returncode == 2, result.stdout + result.stderr


def test_history_and_manifest_assertions_load(tmp_path: Path) -> None:
    text = GOOD.replace(
        "check: {serves: v2}",
        "check: {history: [{revision: 1, status: superseded}, {status: deployed, "
        "description: Upgrade complete}], objects: [{kind: Deployment, name: '{release}-x', "
        "in: manifest, path: [spec, replicas], equals: 2}]}",
    )
    play = load(write(tmp_path, text))
    (check,) = [s.args for s in play.steps if s.action == "check"]
    assert check["history"][1] == {"status": "deployed", "description": "Upgrade complete"}
    assert check["objects"][0]["in"] == "manifest"


@pytest.mark.parametrize(
    ("collectors", "problem"),
    [
        ("catch: []", "spec.catch: [] should be non-empty"),
        ("catch: [{}]", "spec.catch[0]: empty: say at least one thing"),
        (
            "finally: [{podLogs: {pods: all}, helm: [status]}]",
            "spec.finally[0]: one at a time: command, describe, helm, podLogs (found helm and "
            "podLogs)",
        ),
        ("catch: [{podLogs: {}}]", "spec.catch[0].podLogs: missing required key 'pods'"),
        (
            "catch: [{podLogs: {pods: all, previous: 1}}]",
            "spec.catch[0].podLogs.previous: 1 is not of type 'boolean'",
        ),
        (
            "catch: [{describe: {kind: Deployment}}]",
            "spec.catch[0].describe: missing required key 'name'",
        ),
        (
            "catch: [{describe: {kind: deployment, name: x}}]",
            'spec.catch[0].describe.kind: "deployment" is not a kind (as Deployment)',
        ),
        ("catch: [{helm: []}]", "spec.catch[0].helm: [] should be non-empty"),
        ("finally: [{command: [sh, '']}]", "spec.finally[0].command[1]: '' should be non-empty"),
        (
            "finally: [{command: echo hi}]",
            "spec.finally[0].command: 'echo hi' is not of type 'array'",
        ),
        (
            "finally: [{logs: {pods: all}}]",
            "spec.finally[0].logs: unknown key 'logs'; expected one of: command, describe, helm, "
            "podLogs",
        ),
    ],
)
def test_bad_collectors_are_refused_with_line_and_field(
    tmp_path: Path, collectors: str, problem: str
) -> None:
    problems = refusal(tmp_path, GOOD + f"  {collectors}\n")
    assert len(problems) == 1, problems
    assert problems[0] == f"27: {problem}", problems


def test_collectors_load_in_file_order(tmp_path: Path) -> None:
    text = GOOD + (
        "  catch:\n    - podLogs: {pods: all, previous: true}\n"
        "    - describe: {kind: Deployment, name: '{release}-upgrade-gate'}\n"
        "  finally:\n    - helm: [history, '{release}', -n, '{namespace}']\n"
        "    - command: [kubectl, get, pods, -n, '{namespace}']\n"
    )
    play = load(write(tmp_path, text))
    assert [next(iter(c)) for c in play.catch] == ["podLogs", "describe"]
    assert [next(iter(c)) for c in play.finally_] == ["helm", "command"]


# Node actions: drainNode and uncordonNode on any cluster, stopNode and startNode on kind only;
# each file with one has the cluster to itself.
DRAIN = GOOD.replace(
    "    - at: 10\n      deletePod: {pod: 1}\n",
    "    - at: 10\n      drainNode: {node: {nodeOf: 1}}\n"
    "    - at: 12\n      uncordonNode: {node: worker2}\n",
)
STOP = GOOD.replace(
    "    - at: 10\n      deletePod: {pod: 1}\n",
    "    - at: 10\n      stopNode: {node: worker2}\n"
    "    - at: 12\n      startNode: {node: worker2}\n",
)


def test_a_drain_loads_has_the_cluster_alone_and_plays_on_any_cluster(tmp_path: Path) -> None:
    play = load(write(tmp_path, DRAIN))
    assert [(s.action, s.args) for s in play.steps if s.action.endswith("Node")] == [
        ("drainNode", {"node": {"nodeOf": 1}}),
        ("uncordonNode", {"node": "worker2"}),
    ]
    assert play.alone
    assert play.refused_on("existing") is None
    assert not load(write(tmp_path, GOOD)).alone


def test_a_stopped_node_loads_has_the_cluster_alone_and_plays_on_kind_only(
    tmp_path: Path,
) -> None:
    play = load(write(tmp_path, STOP))
    assert play.alone
    assert play.refused_on("kind") is None
    assert play.refused_on("existing") == (
        f"{play.path}: spec.events[0].stopNode, spec.events[1].startNode: the existing cluster "
        "cannot take that action (kind can)"
    )


NODE_NOT_A_NODE = "is not a node: a node's name (worker2) or {nodeOf: pod}"
BAD_NODES = [
    (
        "drainNode: {node: Worker_2}",
        "21: spec.events[0].drainNode.node: \"Worker_2\" is not a node name (a-z, 0-9, '-' and "
        "'.')",
    ),
    (
        "uncordonNode: {node: -worker}",
        "21: spec.events[0].uncordonNode.node: \"-worker\" is not a node name (a-z, 0-9, '-' and "
        "'.')",
    ),
    ("drainNode: {node: 5}", f"21: spec.events[0].drainNode.node: 5 {NODE_NOT_A_NODE}"),
    (
        "uncordonNode: {node: [worker2]}",
        f'21: spec.events[0].uncordonNode.node: ["worker2"] {NODE_NOT_A_NODE}',
    ),
    (
        "stopNode: {node: true}",
        f"21: spec.events[0].stopNode.node: true {NODE_NOT_A_NODE}",
    ),
    (
        "drainNode: {node: {}}",
        "21: spec.events[0].drainNode.node: empty: give a node's name or {nodeOf: pod}",
    ),
    (
        "drainNode: {node: {nodeof: 1}}",
        "21: spec.events[0].drainNode.node.nodeof: unknown key 'nodeof'; a node is a name or "
        "{nodeOf: pod}",
    ),
    (
        "startNode: {node: {nodeOf: 0, name: w}}",
        "21: spec.events[0].startNode.node.name: unknown key 'name'; a node is a name or "
        "{nodeOf: pod}",
    ),
    (
        "drainNode: {node: {nodeOf: 5}}",
        "21: spec.events[0].drainNode.node.nodeOf: pod 5 does not exist: the release has 2 "
        "pod(s) then (0 to 1)",
    ),
    (
        "stopNode: {node: {nodeOf: 1.0}}",
        "21: spec.events[0].stopNode.node.nodeOf: 1.0 is not a pod index or a pod role (named, "
        "replacementOf, onNode, busiest)",
    ),
    (
        "drainNode: {node: {nodeOf: all}}",
        '21: spec.events[0].drainNode.node.nodeOf: "all" is not a pod index or a pod role '
        "(named, replacementOf, onNode, busiest)",
    ),
    (
        "drainNode: {node: {nodeOf: {named: nobody}}}",
        "21: spec.events[0].drainNode.node.nodeOf.named: no work is named 'nobody' "
        "(work `as`: none)",
    ),
    (
        "stopNode: {node: {nodeOf: {busiest: false}}}",
        "21: spec.events[0].stopNode.node.nodeOf.busiest: busiest: true is the only value",
    ),
    (
        "drainNode: {node: {nodeOf: {replacementOf: 2}}}",
        "21: spec.events[0].drainNode.node.nodeOf.replacementOf: pod 2 does not exist: the "
        "release has 2 pod(s) when the run starts",
    ),
    ("drainNode: {}", "21: spec.events[0].drainNode: missing required key 'node'"),
    ("startNode: {}", "21: spec.events[0].startNode: missing required key 'node'"),
    (
        "drainNode: {node: worker2, force: true}",
        "21: spec.events[0].drainNode.force: unknown key 'force'; expected one of: node",
    ),
    ("drainNode: worker2", "21: spec.events[0].drainNode: 'worker2' is not of type 'object'"),
    (
        "stopNode: {node: control-plane}",
        "21: spec.events[0].stopNode.node: 'control-plane' is the control-plane node, which is "
        "never stopped (only workers are; restartApiServer stops its API server)",
    ),
    (
        "startNode: {node: upgrade-gate-control-plane}",
        "21: spec.events[0].startNode.node: 'upgrade-gate-control-plane' is the control-plane "
        "node, which is never stopped (only workers are; restartApiServer stops its API server)",
    ),
    (
        "stopNode: {node: worker2}\n      as: outage",
        "22: spec.events[0].as: only upgrade and rollback are named, not stopNode",
    ),
    (
        "drainNode: {node: worker2}\n      stopNode: {node: worker2}",
        "20: spec.events[0]: one action per event, found drainNode and stopNode",
    ),
]


@pytest.mark.parametrize(
    ("action", "problem"),
    BAD_NODES,
    ids=[f"{i}-{a.split(':')[0]}" for i, (a, _) in enumerate(BAD_NODES)],
)
def test_bad_node_actions_are_refused_with_line_and_field_and_exit_2(
    tmp_path: Path, action: str, problem: str
) -> None:
    text = GOOD.replace("deletePod: {pod: 1}", action)
    assert refusal(tmp_path, text) == [problem]
    result = reproduce("--check", str(write(tmp_path, text)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == f"{tmp_path / 'sample.scenario.yaml'}:{problem}"


def test_reproduce_refuses_a_stopped_node_on_the_existing_cluster(tmp_path: Path) -> None:
    path, kubeconfig = write(tmp_path, STOP), tmp_path / "kubeconfig"
    kubeconfig.write_text("")  # a file, never read: the refusal comes first
    result = reproduce(str(path), "--cluster", "existing", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"{path}: spec.events[0].stopNode, spec.events[1].startNode: the existing cluster cannot "
        "take that action (kind can)"
    )


def test_pytest_refuses_a_stopped_node_on_the_existing_cluster(tmp_path: Path) -> None:
    path, kubeconfig = write(tmp_path, STOP), tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    result = collect(
        tmp_path,
        *("-p", "conftest"),  # the repository's: the cluster options
        *("--cluster", "existing", "--kubeconfig", str(kubeconfig)),
        str(path),
    )
    assert "ERROR collecting sample.scenario.yaml" in result.stdout, result.stdout
    assert (
        f"{path}: spec.events[0].stopNode, spec.events[1].startNode: the existing cluster cannot "
        "take that action" in result.stdout
    )


def test_pytest_collects_a_drain_on_the_existing_cluster_as_a_test_alone(tmp_path: Path) -> None:
    path, kubeconfig = write(tmp_path, DRAIN), tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    result = collect(
        tmp_path,
        *("-p", "conftest"),
        *("--cluster", "existing", "--kubeconfig", str(kubeconfig)),
        *("-m", "alone"),
        str(path),
    )
    # 5, "no tests collected", had the file not been marked alone.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 test collected" in result.stdout, result.stdout


@pytest.mark.parametrize("text", [DRAIN, STOP], ids=["drain", "stop"])
def test_a_file_with_node_actions_is_deselected_on_a_one_node_cluster(
    tmp_path: Path, text: str
) -> None:
    """It needs a second worker for the pods to go to, as test_multinode.py's tests do."""
    path = write(tmp_path, text)
    assert load(path).multinode
    result = collect(
        tmp_path,
        *("-p", "conftest", "-p", "e2e.scenarios.conftest"),
        *("--kind-nodes", "1"),
        str(path),
    )
    assert "multinode: 1 test(s) deselected" in result.stdout, result.stdout + result.stderr
    assert not load(write(tmp_path, GOOD)).multinode
