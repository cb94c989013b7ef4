"""What a scenario file asks to keep besides the harness's own artifacts: its collectors.

``spec.catch`` runs when a check or an expectation failed, ``spec.finally`` after every run;
each collector writes one file under the run's artifacts, in ``collected/``. A collector that
cannot collect writes why: collecting never hides the run's own verdict.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from e2e.playbook.checks import API_VERSIONS
from e2e.stage import Stage

COMMAND_SECONDS = 60


def collect(
    stage: Stage,
    collectors: Iterable[Mapping[str, Any]],
    resolve: Callable[[Any], list[str]],
    directory: Path,
) -> list[Path]:
    """Run each collector in order; the files written, one per collector."""
    written = []
    for i, collector in enumerate(collectors, start=1):
        ((kind, args),) = collector.items()
        path = directory / f"{i:02d}-{kind}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = COLLECTORS[kind](stage, args, resolve)
        except Exception as exc:  # a collector must never hide the verdict
            text = f"could not collect: {type(exc).__name__}: {exc}\n"
        path.write_text(text)
        written.append(path)
    return written


def _fill(stage: Stage, words: Iterable[str]) -> list[str]:
    return [
        w.replace("{release}", stage.release).replace("{namespace}", stage.namespace) for w in words
    ]


def _pod_logs(stage: Stage, args: Mapping[str, Any], resolve: Callable[[Any], list[str]]) -> str:
    previous = bool(args.get("previous", False))
    parts = []
    for pod in resolve(args["pods"]) or []:
        found = stage.kube.pod(stage.namespace, pod)
        containers = [c.name for c in found.spec.containers] if found else []
        for container in containers:
            try:
                text = stage.kube.core.read_namespaced_pod_log(
                    pod, stage.namespace, container=container, previous=previous, timestamps=True
                )
            except Exception as exc:  # no previous instance, or the pod went
                text = f"no log: {exc}\n"
            parts.append(f"== {pod} {container}{' (previous)' if previous else ''}\n{text or ''}")
    return "\n".join(parts) if parts else f"no such pod now: {args['pods']!r}\n"


def _describe(stage: Stage, args: Mapping[str, Any], resolve: Callable[[Any], list[str]]) -> str:
    kind = str(args["kind"])
    api_version = str(args.get("apiVersion") or API_VERSIONS[kind])
    name = _fill(stage, [str(args["name"])])[0]
    found = stage.kube.object(stage.namespace, api_version, kind, name)
    if found is None:
        return f"{kind} {name}: none in {stage.namespace}\n"
    return yaml.safe_dump(found, sort_keys=False)


def _run(argv: list[str], env: Mapping[str, str]) -> str:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_SECONDS, env={**os.environ, **env}
        )
    except subprocess.TimeoutExpired as exc:
        # What it printed so far: bytes, even with text=True, on a timeout.
        out = exc.output or b""
        said = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        return f"$ {shlex.join(argv)}\nstill running after {COMMAND_SECONDS}s: stopped\n{said}"
    return f"$ {shlex.join(argv)}\n{result.stdout}{result.stderr}exit {result.returncode}\n"


def _helm(stage: Stage, args: list[str], resolve: Callable[[Any], list[str]]) -> str:
    helm = stage.helm
    return _run([str(helm.binary), *_fill(stage, args), "--kubeconfig", str(helm.kubeconfig)], {})


def _command(stage: Stage, args: list[str], resolve: Callable[[Any], list[str]]) -> str:
    env = {
        "KUBECONFIG": str(stage.kube.kubeconfig),
        "NAMESPACE": stage.namespace,
        "RELEASE": stage.release,
    }
    return _run(_fill(stage, args), env)


COLLECTORS: dict[str, Callable[[Stage, Any, Callable[[Any], list[str]]], str]] = {
    "podLogs": _pod_logs,
    "describe": _describe,
    "helm": _helm,
    "command": _command,
}
