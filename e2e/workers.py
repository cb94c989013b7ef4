"""The e2e session across pytest-xdist workers (``pytest -n 3``): who does what once.

Each test has its own namespace, so tests run side by side in worker processes; what a
session sets up is shared, not repeated:

- :func:`once`: the first worker to ask does the work (build and load the app images, the
  previous release's image) under a file lock, and leaves its result as JSON in the folder
  every worker of this run shares; the others wait for the lock and read it. Without xdist
  (``-n 0`` or no ``-n``) the work is simply done.
- each worker brings the cluster up itself (``up`` is idempotent and flock-protected: all
  but the first reuse it); only the controller takes it down at the end, once every worker
  is done (:func:`owes_down`), so one worker never removes the cluster under another.
- the phase rows and "cluster used" flag travel back in ``workeroutput``, so the controller
  prints one phase table (and writes one ``phases.json``) for the whole run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from e2e.phases import Phases

log = logging.getLogger("e2e.workers")

T = TypeVar("T")

PHASES = "upgrade-gate-phases"
CLUSTER_USED = "upgrade-gate-cluster-used"


def worker_id(config: pytest.Config) -> str | None:
    """``gw0``, ``gw1``... in an xdist worker; None in the controller or without xdist."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return None if workerinput is None else str(workerinput["workerid"])


def is_controller(config: pytest.Config) -> bool:
    """This process hands tests to xdist workers (and runs none itself)."""
    return worker_id(config) is None and config.pluginmanager.has_plugin("dsession")


def output(config: pytest.Config) -> dict[str, Any] | None:
    """What this worker sends the controller when it is done (None: not a worker)."""
    out: dict[str, Any] | None = getattr(config, "workeroutput", None)
    return out


def once(
    config: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    produce: Callable[[], T],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> tuple[T, str | None]:
    """``produce()`` once per run, whichever worker asks first; (value, who made it).

    Who made it is None when this process did, else the worker whose result was read.
    If the producer fails, nothing is left behind and the next worker tries again (and
    most likely fails with the same error, which is what its tests should report).
    """
    me = worker_id(config)
    if me is None:
        return produce(), None
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder; gw0, gw1... inside
    result = shared / f"{name}.json"
    with (shared / f"{name}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: waiting for another worker's %s", me, name)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if result.is_file():
            stored = json.loads(result.read_text())
            return decode(stored["value"]), str(stored["by"])
        value = produce()
        tmp = result.with_suffix(".tmp")
        tmp.write_text(json.dumps({"by": me, "value": encode(value)}))
        tmp.replace(result)
        return value, None


def measured_once(
    config: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    phases: Phases,
    key: str,
    phase: str,
    produce: Callable[[], T],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> T:
    """:func:`once`, with its time in the phase table: the work, or the wait for it."""
    started = time.monotonic()
    try:
        value, by = once(config, tmp_path_factory, key, produce, encode, decode)
    except BaseException:
        phases.add(phase, time.monotonic() - started)
        raise
    phases.add(phase if by is None else f"{phase} (done by {by})", time.monotonic() - started)
    return value
