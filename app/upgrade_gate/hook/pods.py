"""Where the pods of a release are: the Kubernetes API, or a static list.

A source answers "which pods must be idle right now?". It is asked again and
again during the wait, so pods that appear are gated too and pods that are
gone stop counting. The rule of membership, for the Kubernetes API:

- every pod of the release counts unless it is terminating (a deletion
  timestamp: it takes no new work and Helm is not waiting on it), finished
  (Succeeded or Failed), or one whose containers never ran and cannot start
  (ErrImagePull, ImagePullBackOff, InvalidImageName, CreateContainerConfigError,
  CreateContainerError, with no restart: there is no process to hold work);
- a pod with no IP yet counts as *not yet gated*: never idle, until it has an
  address, is fenced and seen idle, or is gone;
- a pod that a ReplicaSet of the release still has to create counts the same
  way (a placeholder), so a replacement of a deleted pod is waited for even
  before it exists;
- with ``template_hash`` (the pod template the upgrade rolls out), a pod that
  already runs that template is not replaced by the upgrade and is not gated,
  unless there are more of them than ``replicas`` (a scale-down removes some,
  and nobody knows which);
- with ``template_from`` (a ConfigMap that a parent chart renders as a hook of
  the same revision, ``template_revision``), the hash and the replicas are read
  from it, once, before the first listing. No such ConfigMap, or one of another
  revision (left by an upgrade that failed), and every pod is gated: the safe
  side for a chart that does not pass its pod template. Content that cannot be
  read is a MisconfiguredError.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TEMPLATE_HASH_ANNOTATION = "upgrade-gate/template-hash"
T = TypeVar("T")
# The keys of a --template-from ConfigMap's data (chart/charts/upgrade-gate-hook).
TEMPLATE_KEYS = ("template-hash", "replicas", "revision")
_TEMPLATE_HASH = re.compile(r"[0-9a-f]{16}")
# Waiting reasons of a container that has never run and cannot start by itself.
CANNOT_START = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)

log = logging.getLogger("upgrade_gate.hook")


# How often a listing in progress looks at the deadline and at SIGTERM.
LISTING_STEP = 0.1


class SourceError(Exception):
    """The pods cannot be listed right now; the wait retries until its deadline."""


class ForbiddenError(SourceError):
    """RBAC refuses the listing: retrying cannot help."""


class MisconfiguredError(SourceError):
    """The source cannot work as configured (bad file, unknown port name)."""


@dataclass(frozen=True, order=True)
class Pod:
    """One pod to gate: ``uid`` identifies it across listings, ``name`` is for people.

    ``host`` is None while the pod has no address: it is counted, but not yet
    gated (``waiting`` says why).
    """

    name: str
    uid: str
    host: str | None = None
    port: int | None = None
    waiting: str | None = None

    @property
    def addressable(self) -> bool:
        return self.host is not None and self.port is not None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}" if self.addressable else "(no address)"

    @property
    def base_url(self) -> str:
        host = self.host or ""
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"http://{host}:{self.port}"


class PodSource(Protocol):
    @property
    def description(self) -> str: ...

    def list_pods(self) -> list[Pod]: ...


def list_within(
    listing: Callable[[], list[Pod]],
    deadline: float,
    stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> list[Pod]:
    """``listing()``, in a thread of its own and waited for in steps: the deadline and a
    stop (SIGTERM) hold whatever the API server does (a read timeout is per read, so one that
    trickles bytes would hold a listing for ever). A listing given up is a SourceError, and
    is left to its thread, which ends with its request or with the process."""
    outcome: list[list[Pod] | BaseException] = []
    finished = threading.Event()

    def call() -> None:
        try:
            outcome.append(listing())
        except BaseException as exc:  # handed to the waiting thread as it is
            outcome.append(exc)
        finally:
            finished.set()

    threading.Thread(target=call, name="listing", daemon=True).start()
    while not finished.wait(LISTING_STEP):
        if stop() or clock() >= deadline:
            raise SourceError("the listing of pods was still unanswered, and given up")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


# An IPv6 address's zone: an interface name.
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A DNS name: dot-separated labels of letters, digits, inner hyphens (RFC 1123) and
# underscores (service names such as Docker Compose's, which resolvers take).
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")
# A last label like these makes the C library read the name as an IPv4 address in a
# legacy form (127.1, 0x7f.1, 017700000001): another address than it seems to name.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def parse_endpoint(text: str) -> Pod:
    """``host:port`` (or ``[v6]:port``) as a :class:`Pod` named after itself.

    The host is an IP address or a DNS name and nothing else: a ``/``, ``@``, ``?``, ``#`` or
    space would make the URL built from it name another address than the one given."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"endpoint must be host:port, got {text!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if bracketed and (address is None or address.version != 6):
        raise ValueError(f"only an IPv6 address goes in brackets, got {text!r}")
    if address is None and (not host or len(host) > 253 or not _HOSTNAME.fullmatch(host)):
        raise ValueError(f"endpoint host must be an IP address or a DNS name, got {text!r}")
    if address is None and _NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2]):
        raise ValueError(
            f"a numeric endpoint host is an IPv4 address in four decimal parts, got {text!r}"
        )
    if address is not None and address.version == 6 and not bracketed:
        raise ValueError(f"an IPv6 endpoint is written [address]:port, got {text!r}")
    # ipaddress takes anything after an IPv6 address's % for its zone: an interface name here.
    _, percent, zone = host.partition("%")
    if percent and not _ZONE.fullmatch(zone):
        raise ValueError(f"an IPv6 zone is an interface name, got {text!r}")
    return Pod(name=text, uid=text, host=host, port=int(port_text))


@dataclass
class StaticSource:
    pods: list[Pod]

    @property
    def description(self) -> str:
        return f"{len(self.pods)} static endpoint(s)"

    def list_pods(self) -> list[Pod]:
        return list(self.pods)


@dataclass
class FileSource:
    """Endpoints, one ``host:port`` per line, re-read at every listing.

    Removing a line is how a static pod "goes away"; a missing file means no
    pods. Lines starting with ``#`` are comments. A file that no longer parses
    after it once did is being rewritten: that listing is retried, not taken
    for "no pods". Replace the file atomically (write, then rename) for exact
    answers.
    """

    path: Path
    _read_once: bool = False

    @property
    def description(self) -> str:
        return f"endpoints listed in {self.path}"

    def list_pods(self) -> list[Pod]:
        try:
            text = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise MisconfiguredError(f"cannot read {self.path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise MisconfiguredError(
                f"{self.path} is not UTF-8 text (byte {exc.start}); list one host:port per line"
            ) from None
        try:
            pods = [
                parse_endpoint(line)
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
        except ValueError as exc:
            if self._read_once:
                raise SourceError(f"{self.path} changed under the reader: {exc}") from None
            raise MisconfiguredError(f"{self.path}: {exc}") from None
        self._read_once = True
        return pods


class KubernetesSource:
    """The release's pods through the Kubernetes API (see the module's rule)."""

    def __init__(
        self,
        selector: str,
        port: str,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        request_timeout: float = 10.0,
        template_hash: str | None = None,
        replicas: int | None = None,
        template_from: str | None = None,
        template_revision: int | None = None,
    ) -> None:
        from upgrade_gate.hook.kubeapi import ConfigError, KubeApi

        try:
            if kubeconfig is None and _in_cluster():
                self.api = KubeApi.in_cluster()
            else:
                self.api = KubeApi.from_kubeconfig(kubeconfig)
        except ConfigError as exc:
            raise MisconfiguredError(f"no usable Kubernetes configuration: {exc}") from None
        self.namespace = namespace or _default_namespace(kubeconfig)
        self.selector = selector
        self.port = port
        self.request_timeout = request_timeout
        self.template_hash = template_hash
        self.replicas = replicas
        self.template_from = template_from
        self.template_revision = template_revision
        self._template_read = template_from is None
        self._notes: dict[str, str] = {}

    @property
    def description(self) -> str:
        text = f"pods matching {self.selector!r} in namespace {self.namespace!r}"
        if self.template_hash:
            text += f" that this upgrade replaces (new pod template {self.template_hash})"
        elif self.template_from:
            text += (
                f" that this upgrade replaces (its pod template: ConfigMap {self.template_from})"
            )
        return text

    def list_pods(self) -> list[Pod]:
        self._read_template()
        pods = self._list("pods", f"/api/v1/namespaces/{self.namespace}/pods")
        sets = self._list("replicasets", f"/apis/apps/v1/namespaces/{self.namespace}/replicasets")
        gated, kept, notes, live_by_owner = self._classify(pods)
        if kept and self.replicas is not None and len(kept) > self.replicas:
            for pod in kept:
                notes[pod.name] = (
                    f"runs the new pod template, but {len(kept)} do and {self.replicas} will "
                    "stay: gated, as any of them may be removed"
                )
            gated += kept
        else:
            for pod in kept:
                notes[pod.name] = "runs the new pod template already: not replaced, not gated"
        gated += self._not_yet_created(sets, live_by_owner)
        self._log_notes(notes)
        return sorted(gated)

    def staying_pods(self) -> list[Pod]:
        """The addressable pods on ``template_hash`` (all of them without one)."""
        self._read_template()
        pods = self._list("pods", f"/api/v1/namespaces/{self.namespace}/pods")
        gated, kept, _, _ = self._classify(pods)
        return sorted(p for p in (kept if self.template_hash else gated) if p.addressable)

    def _read_template(self) -> None:
        """``template_hash`` and ``replicas`` from the ``template_from`` ConfigMap, once."""
        if self._template_read:
            return
        from upgrade_gate.hook.kubeapi import ApiError

        name = self.template_from
        try:
            item = self._api(
                # The path written at the call: tests/chart/test_rbac.py reads it from here.
                lambda: self.api.get(
                    f"/api/v1/namespaces/{self.namespace}/configmaps/{name}", self.request_timeout
                ),
                verb="get",
                resource="configmaps",
                target=f"configmap {name!r}",
                failed=f"getting configmap {name}",
            )
        except ApiError:  # _api lets only a get's 404 through: there is none
            self._template_read = True
            log.info("no ConfigMap %s (the chart passes no pod template): every pod is gated", name)
            return
        template_hash, replicas, revision = _template_data(name, item)
        self._template_read = True
        if self.template_revision is not None and revision != self.template_revision:
            log.info(
                "ConfigMap %s is of revision %d, not %d (left by an earlier upgrade): "
                "every pod is gated",
                name,
                revision,
                self.template_revision,
            )
            return
        self.template_hash, self.replicas = template_hash, replicas
        log.info(
            "ConfigMap %s: the upgrade rolls out pod template %s, %d replica(s)",
            name,
            template_hash,
            replicas,
        )

    def _classify(
        self, items: list[dict[str, Any]]
    ) -> tuple[list[Pod], list[Pod], dict[str, str], dict[str, int]]:
        """(pods to gate, pods on the new template, notes by pod, live pods by owner UID)."""
        notes: dict[str, str] = {}
        live_by_owner: dict[str, int] = {}
        gated: list[Pod] = []
        kept: list[Pod] = []
        for item in items:
            meta, status = item.get("metadata") or {}, item.get("status") or {}
            if not meta or not status or meta.get("deletionTimestamp"):
                continue
            if status.get("phase") not in ("Pending", "Running"):
                continue
            for owner in meta.get("ownerReferences") or []:
                live_by_owner[owner["uid"]] = live_by_owner.get(owner["uid"], 0) + 1
            name, uid = str(meta.get("name")), str(meta.get("uid"))
            if reason := _cannot_start(status):
                notes[name] = f"cannot start ({reason}) and never ran: it holds no work"
                continue
            pod = self._pod(item, name, uid)
            annotations = meta.get("annotations") or {}
            if self.template_hash and annotations.get(TEMPLATE_HASH_ANNOTATION) == (
                self.template_hash
            ):
                kept.append(pod)
            else:
                gated.append(pod)
        return gated, kept, notes, live_by_owner

    def _pod(self, item: dict[str, Any], name: str, uid: str) -> Pod:
        port = self._resolve_port(item)
        if port is None:
            names = " or ".join(repr(n.strip()) for n in self.port.split(","))
            raise MisconfiguredError(f"pod {name} has no container port named {names}")
        status = item["status"]
        if not status.get("podIP"):
            return Pod(name, uid, None, port, waiting=f"no IP yet ({status.get('phase')})")
        return Pod(name, uid, str(status["podIP"]), port)

    @staticmethod
    def _not_yet_created(
        replica_sets: list[dict[str, Any]], live_by_owner: dict[str, int]
    ) -> list[Pod]:
        """Placeholders for pods a ReplicaSet of the release still has to create."""
        missing = []
        for rs in replica_sets:
            meta = rs.get("metadata") or {}
            if not meta or meta.get("deletionTimestamp"):
                continue
            wanted = (rs.get("spec") or {}).get("replicas") or 0
            name, uid = meta.get("name"), meta.get("uid")
            short = wanted - live_by_owner.get(str(uid), 0)
            missing += [
                Pod(
                    name=f"{name}-<not created yet #{i + 1}>",
                    uid=f"{uid}/missing/{i}",
                    waiting=f"ReplicaSet {name} wants {wanted}, has not created it yet",
                )
                for i in range(max(0, short))
            ]
        return missing

    def _list(self, resource: str, path: str) -> list[dict[str, Any]]:
        return self._api(
            lambda: self.api.list(path, self.selector, self.request_timeout),
            verb="list",
            resource=resource,
            target=resource,
            failed=f"listing {resource}",
        )

    def _api(
        self, call: Callable[[], T], *, verb: str, resource: str, target: str, failed: str
    ) -> T:
        """``call()``, its failures as this module's errors: no usable kubeconfig
        (MisconfiguredError), a refusal for want of RBAC (ForbiddenError naming ``verb`` and
        ``resource``), any other answer or the API server away (SourceError: the caller
        retries). A ``get``'s 404 comes through as the ApiError: the caller decides."""
        from urllib3.exceptions import HTTPError

        from upgrade_gate.hook.kubeapi import ApiError, ConfigError

        try:
            return call()
        except ConfigError as exc:
            raise MisconfiguredError(str(exc)) from None
        except ApiError as exc:
            if exc.status == 404 and verb == "get":
                raise
            if exc.status in (401, 403):
                raise ForbiddenError(
                    f"forbidden: cannot {verb} {target} in namespace {self.namespace!r}; the "
                    f"hook's ServiceAccount needs verb '{verb}' on resource '{resource}' (API: "
                    f"{exc.message})"
                ) from None
            raise SourceError(f"{failed} failed: {exc}") from exc
        except (HTTPError, OSError) as exc:
            # The API server itself being away is transient: the caller retries.
            raise SourceError(f"Kubernetes API unreachable: {exc}") from exc

    def _log_notes(self, notes: dict[str, str]) -> None:
        for name, note in notes.items():
            if self._notes.get(name) != note:
                log.info("pod %s %s", name, note)
        self._notes = notes

    def _resolve_port(self, pod: dict[str, Any]) -> int | None:
        """The first of ``port``'s comma-separated names (or numbers) that ``pod`` has.

        ``management,http``: the management port where the pod has one, else the
        app's port, which pods of releases before it serve the gate on.
        """
        declared = {
            port.get("name"): int(port["containerPort"])
            for container in (pod.get("spec") or {}).get("containers") or []
            for port in container.get("ports") or []
            if port.get("name")
        }
        for choice in self.port.split(","):
            choice = choice.strip()
            if choice.isdigit():
                return int(choice)
            if choice in declared:
                return declared[choice]
        return None


def _template_data(name: str | None, item: dict[str, Any]) -> tuple[str, int, int]:
    """(template hash, replicas, revision) of a --template-from ConfigMap, or a
    MisconfiguredError saying in one line what is wrong with it."""
    data = item.get("data")
    if not isinstance(data, dict):
        raise MisconfiguredError(f"ConfigMap {name} has no data: it must hold {TEMPLATE_KEYS}")
    missing = [key for key in TEMPLATE_KEYS if key not in data]
    if missing:
        raise MisconfiguredError(f"ConfigMap {name} lacks {', '.join(missing)} in its data")
    template_hash, replicas, revision = (str(data[key]) for key in TEMPLATE_KEYS)
    if not _TEMPLATE_HASH.fullmatch(template_hash):
        raise MisconfiguredError(
            f"ConfigMap {name}: template-hash {template_hash[:40]!r} is not 16 hex digits"
        )
    for key, text in (("replicas", replicas), ("revision", revision)):
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise MisconfiguredError(f"ConfigMap {name}: {key} {text[:40]!r} is not a count")
    return template_hash, int(replicas), int(revision)


def _cannot_start(status: dict[str, Any]) -> str | None:
    """The waiting reason if no container of the pod ever ran and none can start."""
    reasons = []
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        ran = container.get("restartCount") or (container.get("lastState") or {}).get("terminated")
        if not waiting or waiting.get("reason") not in CANNOT_START or ran:
            return None
        reasons.append(str(waiting["reason"]))
    return ", ".join(sorted(set(reasons))) or None


def _in_cluster() -> bool:
    import os

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_NAMESPACE.exists()


def _default_namespace(kubeconfig: str | None) -> str:
    if kubeconfig is None and SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    from kubernetes import config

    try:
        _, context = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except (config.ConfigException, OSError):
        return "default"
    namespace: str = (context or {}).get("context", {}).get("namespace") or "default"
    return namespace
