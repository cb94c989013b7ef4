"""Read a scenario file: YAML with line numbers, the JSON Schema, then what a schema cannot say.

Everything here runs before anything touches a cluster. A bad file is refused
with every problem found, each as ``FILE:LINE: spec.path.to.field: what is
wrong``: an unknown key, a negative duration, an event at a pod index that does
not exist, a time beyond the run, a name nobody bound, chart values the chart's
own schema refuses.

    python -m e2e.playbook.load FILE...     # check files; exit 2 naming each problem
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from e2e.helm import CHART
from e2e.playbook.checks import API_VERSIONS

SCHEMA_PATH = Path(__file__).resolve().with_name("scenario.schema.json")
API_VERSION = "upgrade-gate/v1alpha1"
# The actions an event may take, one per event (the schema's oneOf says so too).
ACTIONS = (
    "upgrade",
    "rollback",
    "deletePod",
    "killApp",
    "deleteHookPod",
    "killHelm",
    "restartApiServer",
    "drainNode",
    "uncordonNode",
    "stopNode",
    "startNode",
    "scale",
    "check",
)
# Actions only some clusters can take (kind), refused elsewhere before anything runs; a file
# with one has the cluster to itself (Play.alone).
CLUSTER_FAULTS = ("restartApiServer", "stopNode", "startNode")
# Actions any cluster takes (the Kubernetes API) that the scenarios beside the file would feel
# all the same: a cordoned node changes where their pods go. A file with one has the cluster to
# itself too.
SHARED_FAULTS = ("drainNode", "uncordonNode")
# The actions that name a node (`node`: a name, or {nodeOf: pod}).
NODE_ACTIONS = ("drainNode", "uncordonNode", "stopNode", "startNode")
# What kind calls its control-plane node (CLUSTER-control-plane): never stopped.
CONTROL_PLANE_NODE = "control-plane"
HELM_ACTIONS = ("upgrade", "rollback")
# A scenario file holds some hundreds of values; aliases may repeat a few of them.
MAX_VALUES = 100_000
# No time, count or value of a scenario comes near this; beyond it a float loses the integer.
MAX_NUMBER = 10**15
# Work that arrives `every` so often: no shorter period, and no more arrivals in one run.
MIN_EVERY = 0.01
MAX_ARRIVALS = 10_000
# The exit code of every command given a file it refuses (argparse's for bad arguments).
BAD_FILE = 2

Path_ = tuple[str | int, ...]


# -- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """Operations started on app pods: once at ``at``, or every ``every`` s until ``until``."""

    pods: tuple[int, ...] | str | dict[str, Any]  # indexes, "all", "spread" or a pod role
    seconds: float
    at: float
    every: float | None
    until: float | None
    where: str
    name: str | None = None  # `as`: names the pod that accepts its first operation

    def arrivals(self) -> list[float]:
        if self.every is None or self.until is None:
            return [self.at]
        times, moment = [], self.at
        while moment <= self.until + 1e-9:
            times.append(round(moment, 6))
            moment += self.every
        return times


@dataclass(frozen=True)
class Step:
    """One action at a time (``at``) or once a named helm command ended (``after``)."""

    action: str
    args: dict[str, Any]
    at: float | None
    after: str | None
    timeout: float | None
    name: str | None  # the helm command's name (upgrade, rollback)
    where: str
    line: int
    main: bool = False

    def describe(self) -> str:
        when = f"after {self.after}" if self.after else f"at +{self.at:g}s"
        return f"{self.action} {when}"


@dataclass(frozen=True)
class Play:
    """A checked scenario file, ready to play."""

    path: Path
    name: str
    description: str
    duration: float
    helm: int | str | None  # 3, 4, "each" or the session's first helm
    image: str
    replicas: int
    values: dict[str, Any]
    upgrades: tuple[dict[str, Any], ...]
    work: tuple[Work, ...]
    steps: tuple[Step, ...]  # the main command first among steps of its time, in play order
    expect: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # Collectors (spec.catch: when something failed; spec.finally: always), in file order.
    catch: tuple[dict[str, Any], ...] = ()
    finally_: tuple[dict[str, Any], ...] = ()

    @property
    def main(self) -> Step:
        return next(s for s in self.steps if s.main)

    @property
    def alone(self) -> bool:
        """Whether the file needs the cluster to itself: a fault every scenario beside it
        would feel (CLUSTER_FAULTS, SHARED_FAULTS)."""
        return any(s.action in CLUSTER_FAULTS + SHARED_FAULTS for s in self.steps)

    @property
    def multinode(self) -> bool:
        """Whether the file needs two workers (a three-node cluster): it drains or stops a
        node, and the release's pods need another worker to go to."""
        return any(s.action in NODE_ACTIONS for s in self.steps)

    def refused_on(self, cluster: str) -> str | None:
        """Why ``cluster`` (kind, existing) cannot play the file, in one line: an action only
        kind can take (CLUSTER_FAULTS), and where; None if it can."""
        faults = [f"{s.where}.{s.action}" for s in self.steps if s.action in CLUSTER_FAULTS]
        if not faults or cluster == "kind":
            return None
        return (
            f"{self.path}: {', '.join(faults)}: the {cluster} cluster cannot take that action "
            "(kind can)"
        )

    def expect_for(self, major: int) -> dict[str, Any]:
        """``spec.expect`` as it applies when Helm ``major`` plays the file: the shared
        expectations, with what ``byHelm`` says for that major in their place or added."""
        shared = {k: v for k, v in self.expect.items() if k != "byHelm"}
        return {**shared, **self.expect.get("byHelm", {}).get(f"helm{major}", {})}


# -- problems ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int
    where: str
    message: str


class ScenarioFileError(ValueError):
    """A scenario file that cannot be played; ``str()`` names each problem with its line."""

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda p: (p.line, p.where))
        super().__init__(
            "\n".join(f"{path}:{p.line}: {p.where or '(top)'}: {p.message}" for p in self.problems)
        )


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(document: Any, path: Path_) -> int:
    """The 1-based line of the deepest node on ``path`` that the file has."""
    node, line = document, 1
    for part in path:
        if isinstance(node, CommentedMap) and part in node.lc.data:
            line = node.lc.key(part)[0] + 1
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
        else:
            break
        node = node[part]
    return line


# -- loading -----------------------------------------------------------------------------


def load(path: Path) -> Play:
    """Read, validate and check ``path``; raise :class:`ScenarioFileError` naming each problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioFileError(path, [Problem(1, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioFileError(
            path,
            [
                Problem(
                    line,
                    "",
                    f"not UTF-8: byte 0x{data[exc.start]:02x} at column {column} "
                    "(a scenario file is UTF-8 text)",
                )
            ],
        ) from None
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ScenarioFileError(path, [Problem(line, "", f"not valid YAML: {problem}")]) from exc
    except RecursionError:
        raise ScenarioFileError(path, [Problem(1, "", "nested too deeply to read")]) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ScenarioFileError(path, [Problem(1, "", f"cannot read: {exc}")]) from None
    if not isinstance(document, CommentedMap):
        raise ScenarioFileError(path, [Problem(1, "", "a scenario is a YAML mapping")])
    problems = list(value_problems(document))
    if problems:
        raise ScenarioFileError(path, problems)
    problems = list(schema_problems(document))
    if problems:
        raise ScenarioFileError(path, problems)
    raw: dict[str, Any] = plain(document)
    problems = list(semantic_problems(raw, document))
    if problems:
        raise ScenarioFileError(path, problems)
    return _play(path, raw, document)


def value_problems(document: Any) -> Iterator[Problem]:
    """What no schema or later check should be handed: more values than a scenario has once
    aliases are expanded (a "billion laughs" would take every byte of memory), and numbers
    that are not finite (NaN passes every comparison; an infinite time never comes).

    Each value is counted as often as aliases repeat it, and the walk stops at the limit, so
    it costs at most MAX_VALUES steps whatever the file."""
    seen = 0
    stack: list[tuple[Path_, Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            yield Problem(
                line_of(document, path),
                dotted(path),
                f"the file holds more than {MAX_VALUES} values once its aliases are expanded; "
                "refused (aliases repeated into aliases?)",
            )
            return
        if isinstance(value, Mapping):
            stack.extend(((*path, str(k)), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            yield Problem(line_of(document, path), dotted(path), f"{value} is not a finite number")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
            yield Problem(
                line_of(document, path), dotted(path), f"a number of {len(str(value))} digits"
            )


@cache
def scenario_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def _whole(checker: Any, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# JSON Schema counts 5.0 as an integer; YAML reads `5.0` as a float, which the engine cannot
# use as a pod index or a count. A whole number is written as one.
_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _whole),
)


def schema_problems(document: Any) -> Iterator[Problem]:
    validator = _Validator(scenario_schema())
    for error in validator.iter_errors(document):
        yield from _explain(error, document)


def _explain(error: ValidationError, document: Any) -> Iterator[Problem]:
    path: Path_ = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = sorted(_properties(error))
        for key in instance:
            if key not in known:
                yield Problem(
                    line_of(document, (*path, key)),
                    dotted((*path, key)),
                    f"unknown key {key!r}; expected one of: {', '.join(known)}",
                )
        return
    if error.validator == "pattern" and path and path[-1] in ("kind", "apiVersion"):
        what, example = (
            ("a kind", "Deployment") if path[-1] == "kind" else ("an apiVersion", "apps/v1")
        )
        message = f"{_shown(instance)} is not {what} (as {example})"
        yield Problem(line_of(document, path), dotted(path), message)
        return
    if error.schema is False:  # the schema's one false: byHelm within byHelm
        where = (*path, "byHelm")
        yield Problem(line_of(document, where), dotted(where), "not allowed within byHelm")
        return
    defs = scenario_schema()["$defs"]
    if error.validator == "oneOf" and error.schema == defs["count"]:
        # A count in expect.operations or expect.arrivals: say what one is, and what is wrong.
        inside = [e for e in error.context if e.path]  # a bad atLeast or atMost
        if isinstance(instance, Mapping) and inside:
            for inner in inside:
                yield from _explain(inner, document)
            return
        unknown = (
            [k for k in instance if k not in ("atLeast", "atMost")]
            if isinstance(instance, Mapping)
            else []
        )
        message = (
            f"unknown key {unknown[0]!r}; expected one of: atLeast, atMost"
            if unknown
            else f"{_shown(instance)} is not a count: a whole number >= 0, or atLeast/atMost"
        )
        yield Problem(line_of(document, path), dotted(path), message)
        return
    if error.validator == "oneOf" and error.schema in (defs["pods"], defs["onePod"]):
        yield from _pod_problems(error, document)
        return
    if error.validator == "oneOf" and error.schema == defs["node"]:
        yield from _node_problems(error, document)
        return
    if error.validator == "oneOf" and isinstance(instance, Mapping):
        actions = [a for a in ACTIONS if a in instance]
        if not actions:
            message = f"no action: give exactly one of {', '.join(ACTIONS)}"
        else:
            message = f"one action per event, found {' and '.join(actions)}"
        yield Problem(line_of(document, path), dotted(path), message)
        return
    if error.validator == "oneOf" and error.context:
        deepest = best_match(error.context)
        if deepest.validator not in ("type", "enum"):
            yield from _explain(deepest, document)
            return
        message = f"{_shown(instance)} is not a list of pod indexes, `all` or `spread`"
        yield Problem(line_of(document, path), dotted(path), message)
        return
    if error.validator == "required":
        given = set(instance) if isinstance(instance, Mapping) else set()
        missing = [k for k in _listed(error.validator_value) if k not in given]
        message = f"missing required key {', '.join(map(repr, missing))}"
    elif error.validator == "dependentRequired":
        message = (
            "`every` and `until` go together: an arrival rate needs the time of its last arrival"
        )
    elif error.validator == "not" and isinstance(instance, Mapping) and "after" in instance:
        message = "give `at` or `after`, not both"
    elif error.validator == "not":
        message = "a rollback takes no image or values: it returns to a revision"
    elif error.validator == "minProperties":
        message = "empty: say at least one thing"
    elif error.validator == "maxProperties" and isinstance(instance, Mapping):
        found = " and ".join(sorted(map(str, instance)))
        message = f"one at a time: {', '.join(sorted(_properties(error)))} (found {found})"
    else:
        message = error.message
    yield Problem(line_of(document, path), dotted(path), message)


def _properties(error: ValidationError) -> set[str]:
    schema = error.schema
    return set(schema.get("properties", {})) if isinstance(schema, Mapping) else set()


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _shown(value: Any) -> str:
    return json.dumps(plain(value))


def plain(value: Any) -> Any:
    """ruamel's round-trip nodes as plain dicts, lists, str, int, float and bool."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


# -- what a schema cannot say -----------------------------------------------------------


def semantic_problems(raw: dict[str, Any], document: Any) -> Iterator[Problem]:
    """What the schema cannot say, each kind of problem in turn, in the file's order within."""
    spec = raw["spec"]
    # Times within the run.
    yield from _time_problems(spec, document)
    # Names of helm commands, bound before they are used.
    names = yield from _naming_problems(spec, document)
    yield from _unbound_name_problems(spec, names, document)
    # Pod indexes that exist at that moment.
    yield from _replica_problems(spec["release"], document)
    yield from _pod_index_problems(spec, document)
    # Work the app accepts, and a rollback to a revision that exists.
    yield from _rollback_problems(spec, document)
    yield from _chart_value_problems(raw, document)
    yield from _work_length_problems(spec, raw, document)
    # Object assertions that say one thing, of a kind whose apiVersion is known.
    yield from _object_problems(spec, document)
    # Pod roles: a name some work gives, an original pod that exists.
    yield from _role_problems(spec, document)
    # Nodes stopped and started: never the control plane.
    yield from _control_plane_problems(spec, document)
    # Counts whose least is more than their most; expectations for a Helm that never plays.
    yield from _count_problems(spec["expect"], document)
    for helm, expect in spec["expect"].get("byHelm", {}).items():
        yield from _count_problems(expect, document, ("spec", "expect", "byHelm", helm))
        if spec.get("helm", "each") not in ("each", int(helm.removeprefix("helm"))):
            yield _problem(
                document,
                ("spec", "expect", "byHelm", helm),
                f"never applies: the file plays only with Helm {spec['helm']} (spec.helm)",
            )


ROLES = ("named", "replacementOf", "onNode", "busiest")


def _pod_problems(error: ValidationError, document: Any) -> Iterator[Problem]:
    """A pod (or pods) that is neither an index, a list of them, `all`/`spread`, nor a role."""
    path: Path_ = tuple(error.absolute_path)
    instance = error.instance
    if not isinstance(instance, Mapping):
        several = error.schema == scenario_schema()["$defs"]["pods"]
        listed = "a list of pod indexes, `all`, `spread`" if several else "a pod index"
        message = f"{_shown(instance)} is not {listed} or a pod role ({', '.join(ROLES)})"
        yield Problem(line_of(document, path), dotted(path), message)
        return
    unknown = [k for k in instance if k not in ROLES]
    roles = [k for k in instance if k in ROLES]
    if unknown:
        message = f"unknown key {unknown[0]!r}; a pod role is one of: {', '.join(ROLES)}"
        yield Problem(line_of(document, (*path, unknown[0])), dotted((*path, unknown[0])), message)
    elif len(roles) != 1:
        found = " and ".join(roles) or "nothing"
        line = line_of(document, (*path, roles[0]) if roles else path)
        yield Problem(line, dotted(path), f"one role per pod, found {found}")
    else:
        role = roles[0]
        inside = [e for e in error.context if tuple(e.absolute_path) == (*path, role)]
        reason = inside[0].message if inside else "not a valid value"
        if role == "busiest":
            reason = "busiest: true is the only value"
        elif role == "onNode" and inside and inside[0].validator == "pattern":
            reason = f"{_shown(instance[role])} is not a node name (a-z, 0-9, '-' and '.')"
        yield Problem(line_of(document, (*path, role)), dotted((*path, role)), reason)


def _node_problems(error: ValidationError, document: Any) -> Iterator[Problem]:
    """A node that is neither a node's name nor {nodeOf: pod}."""
    path: Path_ = tuple(error.absolute_path)
    instance = error.instance
    if isinstance(instance, str):
        message = f"{_shown(instance)} is not a node name (a-z, 0-9, '-' and '.')"
        yield Problem(line_of(document, path), dotted(path), message)
        return
    if not isinstance(instance, Mapping):
        message = f"{_shown(instance)} is not a node: a node's name (worker2) or {{nodeOf: pod}}"
        yield Problem(line_of(document, path), dotted(path), message)
        return
    unknown = [k for k in instance if k != "nodeOf"]
    if unknown:
        where = (*path, unknown[0])
        message = f"unknown key {unknown[0]!r}; a node is a name or {{nodeOf: pod}}"
        yield Problem(line_of(document, where), dotted(where), message)
        return
    if "nodeOf" not in instance:
        yield Problem(
            line_of(document, path), dotted(path), "empty: give a node's name or {nodeOf: pod}"
        )
        return
    for inner in error.context:
        if tuple(inner.absolute_path) == (*path, "nodeOf"):
            yield from _explain(inner, document)
            return


def _problem(document: Any, path: Path_, message: str) -> Problem:
    """A problem at ``path``, on the line of the file that holds it."""
    return Problem(line_of(document, path), dotted(path), message)


def _time_problems(spec: dict[str, Any], document: Any) -> Iterator[Problem]:
    """Arrivals that stop before they start or come too often, an event with no time,
    and any time beyond spec.duration."""
    duration = float(spec["duration"])
    timed: list[tuple[Path_, float]] = [(("spec", "upgrade", "at"), spec["upgrade"].get("at", 0))]
    for i, work in enumerate(spec.get("work", [])):
        timed.append((("spec", "work", i, "at"), work.get("at", 0)))
        if "until" in work:
            timed.append((("spec", "work", i, "until"), work["until"]))
        yield from _arrival_problems(("spec", "work", i), work, document)
    for i, event in enumerate(spec.get("events", [])):
        if "at" in event:
            timed.append((("spec", "events", i, "at"), event["at"]))
        elif "after" not in event:
            yield _problem(
                document, ("spec", "events", i), "needs `at` (a time) or `after` (a command)"
            )
    for where, moment in timed:
        if moment > duration:
            yield _problem(
                document, where, f"{moment:g} is beyond the run (spec.duration: {duration:g} s)"
            )


def _arrival_problems(where: Path_, work: dict[str, Any], document: Any) -> Iterator[Problem]:
    """One work entry's arrivals: `until` before `at`, `every` too short or too many times."""
    if "until" in work and work["until"] < work.get("at", 0):
        yield _problem(
            document,
            (*where, "until"),
            f"{work['until']:g} is before the first arrival (at {work.get('at', 0):g})",
        )
    if "every" in work and "until" in work:
        every, span = work["every"], max(0.0, work["until"] - work.get("at", 0))
        if every < MIN_EVERY:
            yield _problem(
                document,
                (*where, "every"),
                f"{every:g} s between arrivals is less than the least, {MIN_EVERY:g} s",
            )
        elif span / every + 1 > MAX_ARRIVALS:
            yield _problem(
                document,
                (*where, "every"),
                f"every {every:g} s for {span:g} s is {int(span / every) + 1} arrivals; "
                f"at most {MAX_ARRIVALS} in a run",
            )


def _count_problems(
    expect: dict[str, Any], document: Any, where: Path_ = ("spec", "expect")
) -> Iterator[Problem]:
    """An `atLeast` above its `atMost` in expect.operations or expect.arrivals: no count fits."""
    counted: list[tuple[Path_, Any]] = [
        ((*where, "operations", fate), n) for fate, n in expect.get("operations", {}).items()
    ]
    for phase, fates in expect.get("arrivals", {}).items():
        counted += [((*where, "arrivals", phase, f), n) for f, n in fates.items()]
    for where, n in counted:
        if isinstance(n, dict) and n.get("atLeast", 0) > n.get("atMost", n.get("atLeast", 0)):
            yield _problem(
                document, where, f"atLeast {n['atLeast']} is more than atMost {n['atMost']}"
            )


def _naming_problems(spec: dict[str, Any], document: Any) -> Generator[Problem, None, set[str]]:
    """An `as` on an event that is no helm command, or a name already taken; returns the
    names bound (spec.upgrade's and every event's `as`)."""
    names = {spec["upgrade"].get("as", main_name(spec["upgrade"]))}
    for i, event in enumerate(spec.get("events", [])):
        action = next(a for a in ACTIONS if a in event)
        if "as" in event:
            if action not in HELM_ACTIONS:
                yield _problem(
                    document,
                    ("spec", "events", i, "as"),
                    f"only upgrade and rollback are named, not {action}",
                )
            elif event["as"] in names:
                yield _problem(
                    document, ("spec", "events", i, "as"), f"{event['as']!r} is already taken"
                )
            names.add(event["as"])
    return names


def _unbound_name_problems(
    spec: dict[str, Any], names: set[str], document: Any
) -> Iterator[Problem]:
    """An `after` or a killHelm.command naming no helm command."""
    bound = sorted(names)
    for i, event in enumerate(spec.get("events", [])):
        if "after" in event and event["after"] not in names:
            yield _problem(
                document,
                ("spec", "events", i, "after"),
                f"no helm command is named {event['after']!r}; named: {', '.join(bound)}",
            )
        target = event.get("killHelm", {}).get("command")
        if target is not None and target not in names:
            yield _problem(
                document,
                ("spec", "events", i, "killHelm", "command"),
                f"no helm command is named {target!r}; named: {', '.join(bound)}",
            )


def _replicas(release: dict[str, Any]) -> Any:
    """The release's pods at the start: spec.release.replicas, else its values' replicaCount."""
    values = release.get("values", {})
    return release.get("replicas", values.get("replicaCount", 1))


def _replica_problems(release: dict[str, Any], document: Any) -> Iterator[Problem]:
    """A replicaCount in spec.release.values that contradicts spec.release.replicas."""
    values = release.get("values", {})
    replicas = _replicas(release)
    if "replicas" in release and "replicaCount" in values and values["replicaCount"] != replicas:
        yield _problem(
            document,
            ("spec", "release", "values", "replicaCount"),
            f"{values['replicaCount']} contradicts spec.release.replicas ({replicas})",
        )


def _pod_index_problems(spec: dict[str, Any], document: Any) -> Iterator[Problem]:
    """Work, and events that act on or check pods, at a pod index the release lacks then."""
    changes = _replica_changes(spec, _replicas(spec["release"]))
    for path, pods, moment in _pod_uses(spec):
        yield from _missing_pods(document, changes, path, pods, moment)


def _pod_uses(spec: dict[str, Any]) -> Iterator[tuple[Path_, Any, float | None]]:
    """Every place a file names pods: (path, the pods, the moment or None after a command)."""
    for i, work in enumerate(spec.get("work", [])):
        yield ("spec", "work", i, "pods"), work["pods"], work.get("at", 0)
    for i, event in enumerate(spec.get("events", [])):
        for action in ("deletePod", "killApp"):
            if action in event:
                yield ("spec", "events", i, action, "pod"), event[action]["pod"], event.get("at")
        for action in NODE_ACTIONS:
            node = event.get(action, {}).get("node")
            if isinstance(node, dict):
                where = ("spec", "events", i, action, "node", "nodeOf")
                yield where, node["nodeOf"], event.get("at")
        for key, pods in event.get("check", {}).items():
            if key in ("fenced", "refusesWork", "notFenced", "acceptsWork"):
                yield ("spec", "events", i, "check", key), pods, event.get("at")


def _object_problems(spec: dict[str, Any], document: Any) -> Iterator[Problem]:
    """Each object assertion: one of matches, path with equals or sameAs, or absent; an
    apiVersion where the kind's is not known."""
    for i, event in enumerate(spec.get("events", [])):
        for j, assertion in enumerate(event.get("check", {}).get("objects", [])):
            where: Path_ = ("spec", "events", i, "check", "objects", j)
            said = [k for k in ("matches", "path", "absent") if k in assertion]
            compared = [k for k in ("equals", "sameAs") if k in assertion]
            if len(said) != 1:
                found = " and ".join(said) or "none"
                yield _problem(
                    document, where, f"say one of matches, path or absent (found {found})"
                )
            elif said == ["path"] and len(compared) != 1:
                found = " and ".join(compared) or "neither"
                yield _problem(
                    document, (*where, "path"), f"path needs equals or sameAs (found {found})"
                )
            elif said != ["path"] and compared:
                yield _problem(document, (*where, compared[0]), f"{compared[0]} needs a path")
            if "apiVersion" not in assertion and assertion["kind"] not in API_VERSIONS:
                yield _problem(
                    document,
                    (*where, "kind"),
                    f"{assertion['kind']} needs its apiVersion (known without one: "
                    f"{', '.join(sorted(API_VERSIONS))})",
                )


def _role_problems(spec: dict[str, Any], document: Any) -> Iterator[Problem]:
    """`as` given twice; `named` with no work of that `as`, or before that work starts;
    `replacementOf` an original pod the release does not have when the run starts."""
    named: dict[str, float] = {}
    for i, work in enumerate(spec.get("work", [])):
        if "as" in work:
            if work["as"] in named:
                yield _problem(
                    document, ("spec", "work", i, "as"), f"{work['as']!r} names earlier work"
                )
            named.setdefault(work["as"], float(work.get("at", 0)))
    originals = _replicas(spec["release"])
    for path, pods, moment in _pod_uses(spec):
        if not isinstance(pods, dict):
            continue
        if "named" in pods:
            name = pods["named"]
            if path[:2] == ("spec", "work") and spec["work"][path[2]].get("as") == name:
                yield _problem(document, (*path, "named"), f"{name!r} is this work's own name")
            elif name not in named:
                known = ", ".join(sorted(named)) or "none"
                yield _problem(
                    document, (*path, "named"), f"no work is named {name!r} (work `as`: {known})"
                )
            elif moment is not None and moment < named[name]:
                yield _problem(
                    document,
                    (*path, "named"),
                    f"{name!r} names a pod only once its work starts, at {named[name]:g}",
                )
        if "replacementOf" in pods and pods["replacementOf"] >= originals:
            yield _problem(
                document,
                (*path, "replacementOf"),
                f"pod {pods['replacementOf']} does not exist: the release has {originals} "
                "pod(s) when the run starts",
            )


def _control_plane_problems(spec: dict[str, Any], document: Any) -> Iterator[Problem]:
    """stopNode or startNode naming the control-plane node: it holds the cluster (the API
    server, etcd, the controllers), and every scenario on it would lose it; restartApiServer
    is the fault of that node that the harness plays. (Named by nodeOf, it is refused when the
    step runs.)"""
    for i, event in enumerate(spec.get("events", [])):
        for action in ("stopNode", "startNode"):
            node = event.get(action, {}).get("node")
            if isinstance(node, str) and (
                node == CONTROL_PLANE_NODE or node.endswith(f"-{CONTROL_PLANE_NODE}")
            ):
                yield _problem(
                    document,
                    ("spec", "events", i, action, "node"),
                    f"{node!r} is the control-plane node, which is never stopped (only "
                    "workers are; restartApiServer stops its API server)",
                )


def _pods_at(changes: list[tuple[float, int]], moment: float | None) -> int:
    """How many pods the release has at ``moment``, given its replica changes."""
    if moment is None:  # after a command: whatever the count may be by then
        return max(count for _, count in changes)
    return [count for when, count in changes if when <= moment][-1]


def _missing_pods(
    document: Any,
    changes: list[tuple[float, int]],
    path: Path_,
    pods: Any,
    moment: float | None,
) -> Iterator[Problem]:
    """Each pod index in ``pods`` (a list, or one index) that does not exist at ``moment``."""
    if not isinstance(pods, list | int):
        return
    there = _pods_at(changes, moment)
    indexed = (
        [((*path, j), index) for j, index in enumerate(pods)]
        if isinstance(pods, list)
        else [(path, pods)]
    )
    for where, index in indexed:
        if index >= there:
            yield _problem(
                document,
                where,
                f"pod {index} does not exist: the release has {there} pod(s) then "
                f"(0 to {there - 1})"
                if there
                else f"pod {index} does not exist: the release has no pods then",
            )


def _rollback_problems(spec: dict[str, Any], document: Any) -> Iterator[Problem]:
    """spec.upgrade's rollback to a revision that is not an earlier one."""
    revisions = 1 + len(spec["release"].get("upgrades", []))
    rollback = spec["upgrade"].get("rollback")
    if rollback is not None and rollback >= revisions:
        yield _problem(
            document,
            ("spec", "upgrade", "rollback"),
            f"revision {rollback} is not an earlier one: the release is at revision "
            f"{revisions} when the run starts",
        )


def _work_length_problems(
    spec: dict[str, Any], raw: dict[str, Any], document: Any
) -> Iterator[Problem]:
    """Work longer than the app accepts (app.operationMaxSeconds in the chart values)."""
    longest = _operation_max_seconds(raw)
    for i, work in enumerate(spec.get("work", [])):
        if longest is not None and work["seconds"] > longest:
            yield _problem(
                document,
                ("spec", "work", i, "seconds"),
                f"{work['seconds']:g} s is longer than the app accepts "
                f"(app.operationMaxSeconds: {longest:g})",
            )


def main_name(upgrade: dict[str, Any]) -> str:
    """The default name of spec.upgrade's command: upgrade, or rollback."""
    return "rollback" if "rollback" in upgrade else "upgrade"


def _replica_changes(spec: dict[str, Any], replicas: int) -> list[tuple[float, int]]:
    changes = [(-1.0, replicas)]
    upgrade = spec["upgrade"]
    if "replicaCount" in upgrade.get("values", {}):
        changes.append((upgrade.get("at", 0), upgrade["values"]["replicaCount"]))
    for event in spec.get("events", []):
        if "at" not in event:
            continue
        if "scale" in event:
            changes.append((event["at"], event["scale"]["replicas"]))
        elif "replicaCount" in event.get("upgrade", {}).get("values", {}):
            changes.append((event["at"], event["upgrade"]["values"]["replicaCount"]))
    return sorted(changes, key=lambda change: change[0])


# -- chart values, checked against the chart's own schema ------------------------------------


@cache
def _chart_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = plain(YAML(typ="safe").load((CHART / "values.yaml").read_text()))
    return defaults


@cache
def _chart_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def value_sets(
    raw: dict[str, Any],
) -> Iterator[tuple[Path_, dict[str, Any], dict[str, Any]]]:
    """Each place that gives chart values: (where, the values helm gets there, its own)."""
    from e2e.stage import BASE_VALUES, merge

    spec = raw["spec"]
    release = spec["release"]
    own = release.get("values", {})
    current = merge(merge(_chart_defaults(), BASE_VALUES), own)
    current["replicaCount"] = release.get("replicas", current["replicaCount"])
    yield ("spec", "release", "values"), current, own
    for i, upgrade in enumerate(release.get("upgrades", [])):
        current = merge(current, upgrade.get("values", {}))
        yield ("spec", "release", "upgrades", i, "values"), current, upgrade.get("values", {})
    if "values" in spec["upgrade"]:
        current = merge(current, spec["upgrade"]["values"])
        yield ("spec", "upgrade", "values"), current, spec["upgrade"]["values"]
    for i, event in enumerate(spec.get("events", [])):
        if "values" in event.get("upgrade", {}):
            own = event["upgrade"]["values"]
            yield ("spec", "events", i, "upgrade", "values"), merge(current, own), own


def _given(values: Any, path: Path_) -> bool:
    for part in path:
        if not isinstance(values, dict) or part not in values:
            return False
        values = values[part]
    return True


def _chart_value_problems(raw: dict[str, Any], document: Any) -> Iterator[Problem]:
    validator = jsonschema.Draft7Validator(_chart_schema())
    for n, (where, values, own) in enumerate(value_sets(raw)):
        # The image is the harness's; any valid repository and tag stand in for it here.
        candidate = {**values, "image": {**values["image"], "repository": "app", "tag": "v1"}}
        for error in validator.iter_errors(candidate):
            inner = tuple(error.absolute_path)
            if n > 0 and not _given(own, inner):
                continue  # inherited: told where it was given
            path = (*where, *inner)
            if error.validator == "additionalProperties":
                known = _properties(error)
                extra = [k for k in error.instance if k not in known]
                for key in extra:
                    if n > 0 and not _given(own, (*inner, key)):
                        continue
                    yield Problem(
                        line_of(document, (*path, key)),
                        dotted((*path, key)),
                        f"the chart has no value {key!r} (chart/values.schema.json)",
                    )
                continue
            yield Problem(
                line_of(document, path),
                dotted(path),
                f"the chart refuses this value: {error.message} (chart/values.schema.json)",
            )


def _operation_max_seconds(raw: dict[str, Any]) -> float | None:
    longest = [
        values.get("app", {}).get("operationMaxSeconds")
        for _, values, _ in value_sets(raw)
        if isinstance(values.get("app", {}).get("operationMaxSeconds"), int | float)
    ]
    return float(max(longest)) if longest else None


# -- building the model -------------------------------------------------------------------------


def _play(path: Path, raw: dict[str, Any], document: Any) -> Play:
    spec = raw["spec"]
    release = spec["release"]
    values = dict(release.get("values", {}))
    replicas = int(release.get("replicas", values.get("replicaCount", 1)))
    values.pop("replicaCount", None)
    work = tuple(
        Work(
            pods=tuple(w["pods"])
            if isinstance(w["pods"], list)
            else dict(w["pods"])
            if isinstance(w["pods"], dict)
            else str(w["pods"]),
            seconds=float(w["seconds"]),
            at=float(w.get("at", 0)),
            every=w.get("every"),
            until=w.get("until"),
            where=f"spec.work[{i}]",
            name=w.get("as"),
        )
        for i, w in enumerate(spec.get("work", []))
    )
    upgrade = spec["upgrade"]
    main_action = "rollback" if "rollback" in upgrade else "upgrade"
    main_args = (
        {"revision": upgrade["rollback"], "flags": upgrade.get("flags", [])}
        if main_action == "rollback"
        else {k: upgrade[k] for k in ("image", "values", "flags") if k in upgrade}
    )
    steps = [
        Step(
            action=main_action,
            args=main_args,
            at=float(upgrade.get("at", 0)),
            after=None,
            timeout=upgrade.get("timeout"),
            name=upgrade.get("as", main_name(upgrade)),
            where="spec.upgrade",
            line=line_of(document, ("spec", "upgrade")),
            main=True,
        )
    ]
    for i, event in enumerate(spec.get("events", [])):
        action = next(a for a in ACTIONS if a in event)
        steps.append(
            Step(
                action=action,
                args=dict(event[action] or {}),
                at=float(event["at"]) if "at" in event else None,
                after=event.get("after"),
                timeout=event.get("timeout"),
                name=event.get("as", f"{action}@{i}") if action in HELM_ACTIONS else None,
                where=f"spec.events[{i}]",
                line=line_of(document, ("spec", "events", i)),
            )
        )
    return Play(
        path=path,
        name=raw["metadata"]["name"],
        description=str(raw["metadata"].get("description", "")).strip(),
        duration=float(spec["duration"]),
        helm=spec.get("helm"),
        image=release["image"],
        replicas=replicas,
        values=values,
        upgrades=tuple(release.get("upgrades", [])),
        work=work,
        steps=tuple(steps),
        expect=dict(spec["expect"]),
        raw=raw,
        catch=tuple(spec.get("catch", [])),
        finally_=tuple(spec.get("finally", [])),
    )


def describe(play: Play) -> str:
    """One line for a file that loaded: what ``--check`` and this module's command print."""
    return f"{play.path}: ok ({play.name}: {len(play.steps)} step(s), {len(play.work)} work)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.playbook.load",
        description="Check scenario files without a cluster: exit 0 when each loads, "
        "2 naming each problem of each file that does not (as python -m e2e.reproduce).",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="*.scenario.yaml")
    args = parser.parse_args(argv)
    bad = 0
    for file in args.files:
        try:
            play = load(file)
        except ScenarioFileError as exc:
            print(exc, file=sys.stderr)
            bad += 1
        else:
            print(describe(play))
    return BAD_FILE if bad else 0


if __name__ == "__main__":
    sys.exit(main())
