"""A starting scenario file from a running release: ``python -m e2e.reproduce --from-release``.

"What just happened in our cluster" starts from what is deployed: the release's
chart values as the user gave them (``helm get values``), its revision and
status, its app pods and the operations running on each. :func:`scenario`
makes the file from that, as plain data (:class:`ReleaseSeen`), and touches no
cluster; :func:`read` is the thin part that asks the cluster (helm, and the
app's ``GET /operations`` through the API server's pod proxy).

The file is a start, not a verdict: an upgrade to v2 and a minimal ``expect``
(helm succeeded, no operation cut off) for the developer to edit. It must load
with the project's loader (:func:`checked`) before anyone gets it.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import re
import tempfile
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import FoldedScalarString

from e2e.playbook.load import Play, ScenarioFileError, load

if TYPE_CHECKING:
    from e2e.helm import Helm
    from e2e.kube import Kube

# The harness's two builds of the app: a release that runs another tag plays as v1.
IMAGES = ("v1", "v2")
# The chart's values the harness sets itself: the image it built, and the pod count
# (spec.release.replicas).
HARNESS_KEYS = ("image", "replicaCount")
# The app container of the chart's pods (chart/templates/_pod.tpl).
APP_CONTAINER = "app"
# A Kubernetes namespace (a DNS label), and a helm release name (helm's own rule).
NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
RELEASE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
RELEASE_MAX = 53
# How long the run may last beyond the gate's deadline and the longest operation: helm's
# --timeout is the deadline + 120 s (the chart's rule), and the rollout after the gate opens.
SLACK_SECONDS = 150
MIN_DURATION = 180
MAX_DURATION = 3600  # the schema's
# Comments and the description wrap at this width (the deepest comment is indented 4).
WIDTH = 88


@dataclass(frozen=True)
class PodSeen:
    """One app pod of the release as read: its app container's image, and the app's
    operation records (``GET /operations``), None where it did not answer."""

    name: str
    created: datetime
    image: str
    operations: list[dict[str, Any]] | None


@dataclass(frozen=True)
class ReleaseSeen:
    """A release as read at ``seen`` (UTC): what :func:`scenario` needs, plain data."""

    namespace: str
    release: str
    revision: int
    status: str
    values: dict[str, Any]  # helm get values: as the user gave them
    pods: list[PodSeen]
    seen: datetime


def parse_target(text: str) -> tuple[str, str]:
    """NAMESPACE/RELEASE as two names; ValueError saying what is wrong, in one line."""
    namespace, slash, release = text.partition("/")
    if not slash or not namespace or not release:
        raise ValueError(f"{text!r} is not NAMESPACE/RELEASE")
    if not NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"{namespace!r} is not a namespace (lowercase letters, digits and '-', at most 63)"
        )
    if not RELEASE.fullmatch(release) or len(release) > RELEASE_MAX:
        raise ValueError(
            f"{release!r} is not a release name (lowercase letters, digits, '-' and '.', "
            f"at most {RELEASE_MAX})"
        )
    return namespace, release


# -- the file, from plain data ---------------------------------------------------------------


def scenario(seen: ReleaseSeen) -> str:
    """The starting scenario file for ``seen``, as YAML text with comments that say where each
    part came from and what was left out."""
    from e2e.stage import BASE_VALUES, merge

    pods = sorted(seen.pods, key=lambda p: p.created)  # pod indexes: oldest first
    when = seen.seen.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = copy.deepcopy(seen.values)
    dropped = {key: values.pop(key) for key in HARNESS_KEYS if key in values}
    work, work_notes = _work(pods, seen.seen)
    image, image_note = _image(pods, dropped.get("image"))
    deadline = float(merge(BASE_VALUES, values)["gate"]["timeoutSeconds"])
    longest = max((entry["seconds"] for entry, _ in work), default=0)
    duration = min(MAX_DURATION, max(MIN_DURATION, int(max(longest, deadline)) + SLACK_SECONDS))

    doc = CommentedMap()
    doc.yaml_set_start_comment(
        "yaml-language-server: $schema=../../playbook/scenario.schema.json\n"
        f"Started by python -m e2e.reproduce --from-release {seen.namespace}/{seen.release}\n"
        "(docs/scenarios.md). Say what happened (spec.events) and what must hold\n"
        "(spec.expect), then play it:\n"
        "  python -m e2e.reproduce THIS-FILE"
    )
    doc["apiVersion"] = "upgrade-gate/v1alpha1"
    doc["kind"] = "Scenario"
    doc["metadata"] = CommentedMap(
        name=_name(seen.namespace, seen.release),
        description=_folded(
            f"Started from the release {seen.namespace}/{seen.release} at revision "
            f"{seen.revision} ({seen.status}), read {when}: {len(pods)} app pod(s), "
            f"{len(work)} operation(s) running. Say here what happened, and what must hold."
        ),
    )
    spec = CommentedMap()
    doc["spec"] = spec
    spec["duration"] = duration
    _note(
        spec,
        "duration",
        2,
        f"the run's bound (s): the gate's deadline ({deadline:g} s) or the longest operation "
        f"({longest:g} s), + {SLACK_SECONDS} s for helm and the rollout; the run ends sooner, "
        "once its helm commands and its work are done",
    )

    release = CommentedMap()
    spec["release"] = release
    release["image"] = image
    if image_note:
        _note(release, "image", 4, image_note)
    release["replicas"] = len(pods)
    notes = [
        f"helm get values of revision {seen.revision}: the values the user gave, over the "
        "harness's small test values (BASE_VALUES in e2e/stage.py)"
    ]
    if dropped:
        shown = ", ".join(f"{path}: {value}" for path, value in _leaves(dropped))
        notes.append(f"dropped, the harness's own (image, replicas): {shown}")
    unset = [
        f"{path}: {value}"
        for path, value in _leaves(BASE_VALUES)
        if path.split(".")[0] not in HARNESS_KEYS and not _has(values, path.split("."))
    ]
    if unset:
        notes.append(
            "the release did not set these, so the harness's test values stand in for the "
            f"chart's defaults: {', '.join(unset)}"
        )
    pods_note = f"the release's app pods when read, oldest first: {_names(pods)}"
    if values:
        _note(release, "replicas", 4, pods_note)
        release["values"] = _commented(values)
        _note(release, "values", 4, *notes)
    else:
        _note(release, "replicas", 4, pods_note, *notes, "the release gave no other values")

    if work:
        entries = CommentedSeq()
        for i, (entry, note) in enumerate(work):
            pods_seq = CommentedSeq(entry["pods"])
            pods_seq.fa.set_flow_style()
            entries.append(CommentedMap(pods=pods_seq, seconds=entry["seconds"]))
            _note(entries, i, 4, note)
        spec["work"] = entries
        _note(
            spec,
            "work",
            2,
            "each operation running when read, on its pod, for the seconds it had left "
            "(rounded up)",
            *work_notes,
        )
    spec["upgrade"] = CommentedMap(image="v2")
    upgrade_notes = [] if work else ["no operation was running when read", *work_notes]
    if image == "v2":
        upgrade_notes.append("the release runs v2 already: an upgrade to v2 changes no image")
    if upgrade_notes:
        _note(spec, "upgrade", 2, *upgrade_notes)
    spec["expect"] = CommentedMap(helm="succeeded", operations=CommentedMap(cutOff=0))
    expect_notes = ["a starting point: what must hold at the end (docs/scenarios.md, spec.expect)"]
    if longest > deadline:
        expect_notes.append(
            f"the gate's deadline ({deadline:g} s) comes before the longest operation's end "
            f"({longest:g} s): this upgrade fails at it"
        )
    _note(spec, "expect", 2, *expect_notes)

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = WIDTH
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _wrapped(text: str, width: int = WIDTH) -> str:
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False))


def _note(node: CommentedMap | CommentedSeq, key: str | int, indent: int, *paragraphs: str) -> None:
    """Comment lines above ``key`` of ``node``, at the key's ``indent``, each paragraph wrapped."""
    text = "\n".join(_wrapped(p, WIDTH - indent) for p in paragraphs)
    node.yaml_set_comment_before_after_key(key, before=text, indent=indent)


def _folded(text: str) -> FoldedScalarString:
    """``text`` as a folded block (``>-``), wrapped as the project's files are."""
    folded: FoldedScalarString = FoldedScalarString(text)
    lines = textwrap.wrap(text, 76, break_on_hyphens=False, break_long_words=False)
    positions, at = [], 0
    for line in lines[:-1]:
        at += len(line)
        positions.append(at)
        at += 1
    folded.fold_pos = positions  # type: ignore[attr-defined]  # ruamel sets it so too
    return folded


def _work(
    pods: list[PodSeen], seen: datetime
) -> tuple[list[tuple[dict[str, Any], str]], list[str]]:
    """(work entry, its comment) per running operation, and what could not be said."""
    work: list[tuple[dict[str, Any], str]] = []
    notes: list[str] = []
    for index, pod in enumerate(pods):
        if pod.operations is None:
            notes.append(f"pod {index} ({pod.name}) did not answer GET /operations")
            continue
        for op in pod.operations:
            if op.get("state") != "running":
                continue
            seconds, started = op.get("seconds"), op.get("started_at")
            if not isinstance(seconds, int | float) or not isinstance(started, str):
                notes.append(f"operation {op.get('id')} on pod {index}: its length is not known")
                continue
            ran = (seen - datetime.fromisoformat(started)).total_seconds()
            left = max(1, math.ceil(seconds - ran))
            note = (
                f"operation {op.get('id')} on pod {index} ({pod.name}): {seconds:g} s from "
                f"{started}, {seconds - ran:.1f} s left"
            )
            work.append(({"pods": [index], "seconds": left}, note))
    return work, notes


def _image(pods: list[PodSeen], values_image: Any) -> tuple[str, str | None]:
    """The harness's build standing for what the release runs (the oldest pod's), and a note
    where that is not the same tag."""
    images = list(dict.fromkeys(p.image for p in pods))
    if not images:
        given = values_image.get("tag") if isinstance(values_image, Mapping) else None
        return "v1", f"no app pod to read its image from (image.tag given: {given or 'none'})"
    tag = image_tag(images[0])
    notes = []
    if tag not in IMAGES:
        notes.append(f"the release runs {images[0]}: the harness's v1 build plays it")
    if len(images) > 1:
        notes.append(f"its pods run several images: {', '.join(images)}")
    return (tag if tag in IMAGES else "v1"), "; ".join(notes) or None


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``registry:5000/app:v1@sha256:...`` -> ``v1``)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def _name(namespace: str, release: str) -> str:
    """metadata.name (the schema's pattern: a-z, 0-9 and '-', at most 52)."""
    text = re.sub(r"[^a-z0-9]+", "-", f"{release}-in-{namespace}".lower())[:52].strip("-")
    return text or "from-release"


def _names(pods: list[PodSeen]) -> str:
    return ", ".join(f"{i}: {p.name}" for i, p in enumerate(pods)) or "none"


def _joined(notes: list[str]) -> str:
    return "".join(f"; {note}" for note in notes)


def _leaves(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _has(values: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(values, Mapping) or part not in values:
            return False
        values = values[part]
    return True


def _commented(value: Any) -> Any:
    """Plain values as ruamel nodes: nested maps block style, as the project's files are."""
    if isinstance(value, Mapping):
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


def checked(text: str, shown: Path) -> Play:
    """``text`` loaded by the project's loader (e2e.playbook.load.load) as the file ``shown``
    (written nowhere yet); ScenarioFileError naming each problem with ``shown`` and its line."""
    with tempfile.TemporaryDirectory(prefix="from-release-") as directory:
        path = Path(directory) / shown.name
        path.write_text(text)
        try:
            play = load(path)
        except ScenarioFileError as exc:
            raise ScenarioFileError(shown, exc.problems) from None
    return dataclasses.replace(play, path=shown)


# -- the cluster, read ----------------------------------------------------------------------


def read(kube: Kube, helm: Helm, namespace: str, release: str) -> ReleaseSeen:
    """The release as it is now: helm's revision, status and user values; each app pod's image
    and running operations. pyhelm3's ReleaseNotFoundError where there is no such release."""
    current, values = helm.current_values(release, namespace)
    pods = []
    for pod in kube.app_pods(namespace, release):
        containers = {c.name: c.image for c in pod.spec.containers}
        pods.append(
            PodSeen(
                name=pod.metadata.name,
                created=pod.metadata.creation_timestamp,
                image=containers.get(APP_CONTAINER, next(iter(containers.values()), "")),
                operations=kube.operations(namespace, pod.metadata.name),
            )
        )
    return ReleaseSeen(
        namespace=namespace,
        release=release,
        revision=int(current.revision),
        status=str(current.status.value),
        values=values,
        pods=pods,
        seen=datetime.now(UTC),
    )
