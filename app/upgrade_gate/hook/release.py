"""Lift the fences on pods that stay: what the post-rollback hook runs.

The pre-upgrade hook leaves the pods it let go fenced for the ``hold`` lease,
to cover the rollout that replaces them. When a rollback keeps them instead
(Helm 3 ``--atomic``, Helm 4 ``--rollback-on-failure``, or ``helm rollback``),
nothing will replace them: their fences are lifted here at once rather than
when the lease runs out. A pod that cannot be reached is only logged: its
lease runs out on its own, and a rollback must not fail for it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from upgrade_gate.hook.client import PodClient
from upgrade_gate.hook.pods import Pod

log = logging.getLogger("upgrade_gate.hook")


def release_fences(pods: list[Pod], token: str | None, holder: str) -> str:
    """DELETE /drain on every pod, at once; a one-line summary of how it went."""
    if not pods:
        return "no pod stays: no fence to lift"

    def release(pod: Pod) -> str | None:
        client = PodClient(pod.base_url, token, holder)
        try:
            answer = client.release()
        finally:
            client.close()
        if answer.status == 200:
            log.info("pod %s: fence lifted, taking work again", pod.name)
            return None
        log.warning("pod %s: could not lift the fence (%s)", pod.name, answer.describe())
        return f"{pod.name} ({answer.describe()})"

    with ThreadPoolExecutor(max_workers=min(64, len(pods))) as pool:
        failed = [f for f in pool.map(release, pods) if f]
    if not failed:
        return f"fences lifted on {len(pods)} pod(s) that stay"
    return (
        f"fences lifted on {len(pods) - len(failed)} of {len(pods)} pod(s) that stay; "
        f"the others keep theirs until the lease runs out: {'; '.join(failed)}"
    )
