"""The harness's one wait helper: poll a condition on the monotonic clock.

Unit tests, benchmarks and the cluster providers wait with :func:`eventually`;
:func:`e2e.kube.wait_for` is the same at the pace of a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def eventually(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails after ``timeout`` seconds on the monotonic clock (not a count of
    tries), saying ``what`` was awaited and the last value seen, or what
    ``describe`` reports when the predicate's own value says too little.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = describe() if describe is not None else f"last value: {value!r}"
            raise AssertionError(f"{what} not met within {timeout:g}s ({seen})")
        time.sleep(interval)
