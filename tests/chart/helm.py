"""Render the chart with a real helm binary and read the result as data."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from upgrade_gate.hook.pods import TEMPLATE_HASH_ANNOTATION

CHART = Path(__file__).resolve().parents[2] / "chart"
RELEASE = "rel"
NAMESPACE = "apps"
# The pod annotation the hook compares with --template-hash: the chart must write that very key.
TEMPLATE_HASH = TEMPLATE_HASH_ANNOTATION

Manifest = dict[str, Any]
Values = Mapping[str, Any]


class RenderError(AssertionError):
    """helm refused to render; ``stderr`` holds its message."""

    def __init__(self, command: Sequence[str], stderr: str) -> None:
        super().__init__(f"{' '.join(command)} failed:\n{stderr}")
        self.stderr = stderr


@dataclass(frozen=True)
class Helm:
    name: str
    binary: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), *args]
        # Keep helm off any kubeconfig, cache or plugin of the person running the tests.
        with tempfile.TemporaryDirectory(prefix="helm-home-") as home:
            env = {
                "HOME": home,
                "PATH": "/usr/bin:/bin",
                "KUBECONFIG": str(Path(home) / "no-kubeconfig"),
                "HELM_CACHE_HOME": str(Path(home) / "cache"),
                "HELM_CONFIG_HOME": str(Path(home) / "config"),
                "HELM_DATA_HOME": str(Path(home) / "data"),
            }
            result = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=60, check=False
            )
        if check and result.returncode != 0:
            raise RenderError(command, result.stderr)
        return result

    def template(
        self,
        values: Values | None = None,
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
        chart: Path = CHART,
        show_only: str | None = None,
    ) -> list[Manifest]:
        with _values_file(values) as file:
            args = ["template", release, str(chart), "--namespace", namespace]
            if file is not None:
                args += ["--values", str(file)]
            if show_only:
                args += ["--show-only", show_only]
            out = self.run(*args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def template_error(self, values: Values | None = None, **kwargs: Any) -> str:
        """Render expecting a refusal; returns helm's message."""
        try:
            self.template(values, **kwargs)
        except RenderError as exc:
            return exc.stderr
        raise AssertionError(f"{self.name} rendered values it should refuse: {values}")

    def lint(
        self, values: Values | None = None, chart: Path = CHART
    ) -> subprocess.CompletedProcess[str]:
        with _values_file(values) as file:
            args = ["lint", "--strict", str(chart)]
            if file is not None:
                args += ["--values", str(file)]
            return self.run(*args, check=False)

    def notes(self, values: Values | None = None, **kwargs: Any) -> str:
        """NOTES.txt as helm renders it.

        ``helm template`` leaves NOTES.txt out and ``helm install --dry-run``
        needs a cluster, so a copy of the chart renders the same text into a
        ConfigMap through helm's own engine.
        """
        with chart_copy() as chart:
            notes = chart / "templates" / "NOTES.txt"
            text = notes.read_text()
            notes.unlink()
            (chart / "templates" / "_notes_under_test.tpl").write_text(
                '{{- define "notes-under-test" -}}\n' + text + "{{- end }}\n"
            )
            (chart / "templates" / "notes-under-test.yaml").write_text(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\n"
                'data:\n  notes: {{ include "notes-under-test" . | toJson }}\n'
            )
            docs = self.template(
                values, chart=chart, show_only="templates/notes-under-test.yaml", **kwargs
            )
        return str(docs[0]["data"]["notes"])


@contextmanager
def chart_copy() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="chart-") as tmp:
        chart = Path(tmp) / CHART.name
        shutil.copytree(CHART, chart)
        yield chart


@contextmanager
def _values_file(values: Values | None) -> Iterator[Path | None]:
    if values is None:
        yield None
        return
    # JSON is YAML, and keeps types exactly as written here (no --set coercion).
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as file:
        json.dump(values, file)
        file.flush()
        yield Path(file.name)


# -- reading rendered manifests ------------------------------------------------


def find(docs: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        doc
        for doc in docs
        if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def one(docs: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def annotations_of(doc: Manifest) -> dict[str, str]:
    return dict(doc["metadata"].get("annotations") or {})


def labels_of(doc: Manifest) -> dict[str, str]:
    return dict(doc["metadata"].get("labels") or {})


def hooks(docs: list[Manifest]) -> list[Manifest]:
    return [doc for doc in docs if "helm.sh/hook" in annotations_of(doc)]


def hook_events(doc: Manifest) -> set[str]:
    """The Helm events a hook object runs on (``helm.sh/hook``, comma-separated)."""
    return set(annotations_of(doc)["helm.sh/hook"].split(","))


def hooks_on(docs: list[Manifest], event: str) -> list[Manifest]:
    """The hook objects Helm creates on ``event`` (pre-upgrade, post-rollback, ...)."""
    return [doc for doc in hooks(docs) if event in hook_events(doc)]


def hooks_running(docs: list[Manifest], subcommand: str) -> list[Manifest]:
    """The hook Jobs and Pods whose container runs ``python3 -m upgrade_gate.hook <subcommand>``."""
    return [
        doc
        for doc in [*find(docs, "Job"), *find(docs, "Pod")]
        if any(c["args"][:1] == [subcommand] for c in pod_template(doc)["spec"]["containers"])
    ]


def gate_hook(docs: list[Manifest]) -> Manifest:
    """The pre-upgrade gate: the one Job or Pod running ``app wait`` (gate.hookKind)."""
    found = hooks_running(docs, "wait")
    assert len(found) == 1, f"expected one hook running 'wait', found {len(found)}"
    return found[0]


def release_job(docs: list[Manifest]) -> Manifest:
    """The post-rollback Job lifting fences: the one Job running ``app release``."""
    found = hooks_running(docs, "release")
    assert len(found) == 1, f"expected one Job running 'release', found {len(found)}"
    assert found[0]["kind"] == "Job"
    return found[0]


def identity(docs: list[Manifest], kind: str) -> Manifest:
    """The hook's identity as regular objects of the release: ServiceAccount, Role, RoleBinding."""
    (found,) = [doc for doc in find(docs, kind) if "helm.sh/hook" not in annotations_of(doc)]
    return found


def hook_identity(docs: list[Manifest], kind: str) -> Manifest:
    """The hook's identity made as a hook, for when the regular one cannot serve."""
    (found,) = [doc for doc in find(docs, kind) if "helm.sh/hook" in annotations_of(doc)]
    return found


def template_hash(docs: list[Manifest]) -> str:
    """The app pod template's hash, as the Deployment puts it on its pods."""
    return annotations_of(pod_template(one(docs, "Deployment")))[TEMPLATE_HASH]


def rolled_out(docs: list[Manifest], hook: Manifest) -> tuple[str, int | None] | None:
    """What the hook ``hook`` will take for the pod template the upgrade rolls out, as
    (hash, replicas): its --template-hash and --replicas, or the data of the ConfigMap its
    --template-from names, rendered beside it with the revision --template-revision names.
    None: it gates every pod (the ConfigMap is not rendered, or of another revision)."""
    args = container(hook, "gate")["args"]
    if "--template-hash" in args:
        replicas = int(flag(args, "--replicas")) if "--replicas" in args else None
        return flag(args, "--template-hash"), replicas
    if "--template-from" not in args:
        return None
    found = find(docs, "ConfigMap", flag(args, "--template-from"))
    if not found:
        return None
    (configmap,) = found
    data = configmap["data"]
    if data["revision"] != flag(args, "--template-revision"):
        return None
    return data["template-hash"], int(data["replicas"])


def pod_template(doc: Manifest) -> Manifest:
    """A workload's pod template; a Pod is its own (metadata and spec)."""
    template: Manifest = doc if doc["kind"] == "Pod" else doc["spec"]["template"]
    return template


def container(doc: Manifest, name: str) -> Manifest:
    (found,) = [c for c in pod_template(doc)["spec"]["containers"] if c["name"] == name]
    return dict(found)


def token_secret(doc: Manifest, name: str) -> dict[str, Any]:
    """The Secret volume the file ``$UPGRADE_GATE_TOKEN_FILE`` of container ``name`` lies in:
    ``{"secretName", "key", "optional"}``."""
    spec = pod_template(doc)["spec"]
    main = container(doc, name)
    path = env(main)["UPGRADE_GATE_TOKEN_FILE"]
    directory, _, file_name = path.rpartition("/")
    (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == directory]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    (item,) = [i for i in secret["items"] if i["path"] == file_name]
    return {
        "secretName": secret["secretName"],
        "key": item["key"],
        "optional": secret.get("optional", False),
    }


def env(container_spec: Manifest) -> dict[str, Any]:
    """name -> value, or the valueFrom mapping for references."""
    return {
        item["name"]: item.get("value", item.get("valueFrom"))
        for item in container_spec.get("env", [])
    }


def selector_matches(selector: str, pod_labels: Mapping[str, str]) -> bool:
    """Equality-based label selector (``k=v,k2=v2``), as the hook passes it to the API."""
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or key.endswith(("!", "=")) or value.startswith("="):
            raise ValueError(f"only k=v terms are expected, got {term!r}")
        if pod_labels.get(key.strip()) != value.strip():
            return False
    return True


def flag(args: Sequence[str], name: str) -> str:
    """The value after ``name`` in an argument list."""
    index = list(args).index(name)
    return args[index + 1]
