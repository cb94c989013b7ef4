"""A starting scenario file from a release, made from plain data: it loads, and says what it should.

No cluster here: e2e/playbook/from_release.py's pure part (what ``python -m e2e.reproduce
--from-release`` writes, from a release as read), loaded by the project's own loader; and the
command's refusals of bad arguments, which it gives before it looks for a cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from e2e.playbook.from_release import (
    PodSeen,
    ReleaseSeen,
    checked,
    image_tag,
    parse_target,
    scenario,
)
from e2e.playbook.load import ScenarioFileError, load
from e2e.stage import BASE_VALUES, merge
from tests.playbook.test_scenario_files import reproduce

ROOT = Path(__file__).resolve().parents[2]
SEEN = datetime(2026, 12, 7, 15, 0, 0, tzinfo=UTC)
# As the harness installs a release: its small test values, the image and the pod count, and
# one value of the user's own.
USER_VALUES = merge(
    BASE_VALUES,
    {
        "replicaCount": 2,
        "image": {"repository": "upgrade-gate-app", "tag": "v1"},
        "gate": {"timeoutSeconds": 120},
    },
)


def operation(op_id: str, seconds: float, ran: float, state: str = "running") -> dict[str, Any]:
    """An operation record as the app's GET /operations gives it, ``ran`` s before SEEN."""
    started = (SEEN - timedelta(seconds=ran)).isoformat(timespec="microseconds")
    return {
        "id": op_id,
        "name": "sleep",
        "state": state,
        "started_at": started.replace("+00:00", "Z"),
        "finished_at": None,
        "error": None,
        "seconds": seconds,
    }


def pod(
    name: str,
    age: float,
    operations: list[dict[str, Any]] | None,
    image: str = "upgrade-gate-app:v1",
) -> PodSeen:
    return PodSeen(name, SEEN - timedelta(seconds=age), image, operations)


def release(pods: list[PodSeen], values: dict[str, Any] | None = None, **kw: Any) -> ReleaseSeen:
    fields: dict[str, Any] = {"revision": 3, "status": "deployed", **kw}
    return ReleaseSeen(
        namespace="apps",
        release="demo",
        values=USER_VALUES if values is None else values,
        pods=pods,
        seen=SEEN,
        **fields,
    )


def written(tmp_path: Path, seen: ReleaseSeen) -> tuple[str, dict[str, Any]]:
    """The file's text, and what the loader made of it (its raw document)."""
    text = scenario(seen)
    path = tmp_path / "from-release.scenario.yaml"
    path.write_text(text)
    return text, load(path).raw


def test_a_release_with_a_running_operation_makes_a_file_that_loads(tmp_path: Path) -> None:
    # Listed newest first, as an API server may: indexes are oldest first, as the harness's.
    pods = [
        pod("demo-b", age=50, operations=[operation("abc", 60, ran=12.5)]),
        pod("demo-a", age=60, operations=[operation("old", 5, ran=30, state="succeeded")]),
    ]
    text, raw = written(tmp_path, release(pods))
    spec = raw["spec"]
    assert spec["release"]["image"] == "v1"
    assert spec["release"]["replicas"] == 2
    # The running operation, on the younger pod (index 1), with what it had left, rounded up;
    # the finished one is not work.
    assert spec["work"] == [{"pods": [1], "seconds": 48}]
    # The user's values, without what the harness owns; the comment says what was dropped.
    values = spec["release"]["values"]
    assert values["gate"]["timeoutSeconds"] == 120
    assert values["app"] == BASE_VALUES["app"]
    assert "image" not in values
    assert "replicaCount" not in values
    assert "# dropped, the harness's own (image, replicas): image.pullPolicy: IfNotPresent," in text
    assert "image.tag: v1, replicaCount: 2" in text
    assert spec["upgrade"] == {"image": "v2"}
    assert spec["expect"] == {"helm": "succeeded", "operations": {"cutOff": 0}}
    description = raw["metadata"]["description"]
    assert description.startswith(
        "Started from the release apps/demo at revision 3 (deployed), read 2026-12-07T15:00:00Z:"
    )
    assert "2 app pod(s), 1 operation(s) running." in description
    assert "# operation abc on pod 1 (demo-b): 60 s from 2026-12-07T14:59:47.500000Z" in text
    # The run lasts long enough for the gate's deadline and helm's --timeout after it.
    assert spec["duration"] >= 120 + 120


def test_the_text_is_the_file_the_loader_sees(tmp_path: Path) -> None:
    seen = release([pod("demo-a", age=60, operations=[operation("abc", 30, ran=1)])])
    play = checked(scenario(seen), tmp_path / "mine.scenario.yaml")
    assert play.path == tmp_path / "mine.scenario.yaml"
    assert not play.path.exists()  # checked, not written
    assert play.replicas == 1
    assert [(w.pods, w.seconds) for w in play.work] == [((0,), 29.0)]


def test_each_running_operation_is_its_own_work_on_its_pod(tmp_path: Path) -> None:
    pods = [
        pod(
            "demo-a", age=90, operations=[operation("a1", 100, ran=10), operation("a2", 20, ran=0)]
        ),
        pod("demo-b", age=80, operations=[]),
        # Still running past its planned end (a slow thread, a clock apart): a second left.
        pod("demo-c", age=70, operations=[operation("c1", 10, ran=10.2)]),
    ]
    _, raw = written(tmp_path, release(pods))
    assert raw["spec"]["work"] == [
        {"pods": [0], "seconds": 90},
        {"pods": [0], "seconds": 20},
        {"pods": [2], "seconds": 1},
    ]
    assert raw["spec"]["release"]["replicas"] == 3


def test_a_pod_that_does_not_answer_is_said(tmp_path: Path) -> None:
    pods = [pod("demo-a", age=60, operations=None), pod("demo-b", age=50, operations=[])]
    text, raw = written(tmp_path, release(pods))
    assert "work" not in raw["spec"]
    assert "# no operation was running when read" in text
    assert "# pod 0 (demo-a) did not answer GET /operations" in text


@pytest.mark.parametrize(
    ("image", "mapped", "said"),
    [
        ("upgrade-gate-app:v2", "v2", "the release runs v2 already"),
        ("localhost:5000/upgrade-gate-app:v1", "v1", None),
        (
            "registry.example:5000/team/app:7.1.0@sha256:0123",
            "v1",
            "the release runs registry.example:5000/team/app:7.1.0@sha256:0123: the harness's v1",
        ),
        ("registry.example:5000/app", "v1", "the release runs registry.example:5000/app:"),
    ],
)
def test_the_image_is_the_harness_build_of_the_same_tag_or_v1_saying_so(
    tmp_path: Path, image: str, mapped: str, said: str | None
) -> None:
    text, raw = written(tmp_path, release([pod("demo-a", age=60, operations=[], image=image)]))
    assert raw["spec"]["release"]["image"] == mapped
    if said:
        assert said in " ".join(line.lstrip("# ") for line in text.splitlines())
    else:
        assert "the release runs" not in text


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("app:v1", "v1"),
        ("localhost:5000/app:v2", "v2"),
        ("localhost:5000/app", None),
        ("ghcr.io/o/app:1.2@sha256:ab", "1.2"),
        ("ghcr.io/o/app@sha256:ab", None),
    ],
)
def test_image_tag(image: str, tag: str | None) -> None:
    assert image_tag(image) == tag


def test_values_the_harness_sets_and_the_release_did_not_are_named(tmp_path: Path) -> None:
    # A release installed with the chart's defaults but for one value: the harness's small
    # test values stand in for the rest, and the file says which.
    text, raw = written(
        tmp_path,
        release([pod("demo-a", age=60, operations=[])], values={"gate": {"holdSeconds": 300}}),
    )
    assert raw["spec"]["release"]["values"] == {"gate": {"holdSeconds": 300}}
    flat = " ".join(line.lstrip("# ") for line in text.splitlines())
    assert "the harness's test values stand in for the chart's defaults:" in flat
    assert "gate.timeoutSeconds: 90" in flat
    assert "gate.holdSeconds" not in flat.split("chart's defaults:")[1]
    assert "dropped" not in text


def test_a_release_with_no_values_of_its_own(tmp_path: Path) -> None:
    text, raw = written(tmp_path, release([pod("demo-a", age=60, operations=[])], values={}))
    assert "values" not in raw["spec"]["release"]
    assert "# the release gave no other values" in text


def test_an_operation_past_the_gate_deadline_is_said(tmp_path: Path) -> None:
    seen = release([pod("demo-a", age=600, operations=[operation("long", 500, ran=100)])])
    text, raw = written(tmp_path, seen)
    assert raw["spec"]["work"] == [{"pods": [0], "seconds": 400}]
    assert raw["spec"]["duration"] >= 400 + 120
    flat = " ".join(line.lstrip("# ") for line in text.splitlines())
    assert "the gate's deadline (120 s) comes before the longest operation's end (400 s)" in flat


def test_a_file_that_would_not_load_is_refused_with_the_loaders_problems(tmp_path: Path) -> None:
    shown = tmp_path / "out.scenario.yaml"
    # A value the working tree's chart does not have (a release of another chart version),
    # and a release with no app pods (replicas 0): the loader's own words, with the lines.
    seen = release([], values={"gate": {"colour": "red"}})
    with pytest.raises(ScenarioFileError) as caught:
        checked(scenario(seen), shown)
    problems = str(caught.value).splitlines()
    assert any(
        p.startswith(f"{shown}:") and "spec.release.replicas: 0 is less than the minimum of 1" in p
        for p in problems
    ), problems
    assert not shown.exists()


def test_the_name_is_one_the_schema_takes() -> None:
    long = "n" + "-x" * 31  # a namespace of 63 characters, the most there is
    text = scenario(ReleaseSeen(long, "my.release", 1, "deployed", {}, [pod("a", 1, [])], SEEN))
    name = YAML(typ="safe").load(text)["metadata"]["name"]
    assert len(name) <= 52, name
    assert name[0].isalnum(), name
    assert name[-1].isalnum(), name
    assert name.startswith("my-release-in-n-x")


@pytest.mark.parametrize(
    "target",
    [
        "demo",
        "apps/",
        "/demo",
        "Apps/demo",
        "apps/Demo",
        "apps/de mo",
        "apps/demo/x",
        "a" * 64 + "/d",
    ],
)
def test_a_bad_target_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match=r"^'"):
        parse_target(target)


def test_a_good_target() -> None:
    assert parse_target("ug-apps/demo.v1") == ("ug-apps", "demo.v1")


# -- the command, before any cluster ---------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("demo", "'demo' is not NAMESPACE/RELEASE"),
        ("Apps/demo", "'Apps' is not a namespace"),
        ("apps/demo_1", "'demo_1' is not a release name"),
    ],
)
def test_a_bad_release_argument_exits_2_in_one_line(
    tmp_path: Path, target: str, reason: str
) -> None:
    result = reproduce("--from-release", target, "--kubeconfig", str(tmp_path / "none"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"python -m e2e.reproduce: --from-release {target}: {reason}"), line


def test_a_missing_kubeconfig_exits_2_in_one_line(tmp_path: Path) -> None:
    result = reproduce("--from-release", "apps/demo", "--kubeconfig", str(tmp_path / "none"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"python -m e2e.reproduce: --from-release apps/demo: no kubeconfig at {tmp_path / 'none'} "
        "(give --kubeconfig)"
    ]
    assert not (ROOT / "apps-demo.scenario.yaml").exists()


@pytest.mark.parametrize(
    "extra",
    [["some.scenario.yaml"], ["--schema"]],
    ids=["with-a-file", "with-schema"],
)
def test_from_release_is_exclusive_with_a_file_and_schema(extra: list[str]) -> None:
    result = reproduce("--from-release", "apps/demo", *extra)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "python -m e2e.reproduce: error: --from-release takes no scenario file and no --schema"
    )


def test_output_is_for_from_release() -> None:
    result = reproduce("--schema", "-o", "x.yaml")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "python -m e2e.reproduce: error: -o/--output is for --from-release"
    )


def test_help_names_the_flag() -> None:
    result = reproduce("--help")
    assert result.returncode == 0
    assert "--from-release NAMESPACE/RELEASE" in result.stdout
    assert "-o FILE, --output FILE" in result.stdout
