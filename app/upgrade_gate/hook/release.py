"""Lift the fences on pods that stay: what the post-rollback hook runs.

The pre-upgrade hook leaves the pods it let go fenced for the ``hold`` lease,
to cover the rollout that replaces them. When a rollback keeps them instead
(Helm 3 ``--atomic``, Helm 4 ``--rollback-on-failure``, or ``helm rollback``),
nothing will replace them: their fences are lifted here at once rather than
when the lease runs out. A pod that cannot be reached is only logged: its
lease runs out on its own, and a rollback must not fail for it. A pod that
answers ``404`` or ``405`` (an app without ``/drain``, such as the original
demo, whose wait already failed saying so) holds no fence: nothing to lift,
and said so.
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

    def release(pod: Pod) -> tuple[str, str | None]:
        """("lifted" | "none" | "kept", what to say of the pod in the summary)."""
        client = PodClient(pod.base_url, token, holder)
        try:
            answer = client.release()
        finally:
            client.close()
        if answer.status == 200:
            log.info("pod %s: fence lifted, taking work again", pod.name)
            return "lifted", None
        if answer.not_served:
            log.info(
                "pod %s: DELETE /drain answers %d: no fence is served there, none to lift",
                pod.name,
                answer.status,
            )
            return "none", f"{pod.name} (HTTP {answer.status})"
        log.warning("pod %s: could not lift the fence (%s)", pod.name, answer.describe())
        return "kept", f"{pod.name} ({answer.describe()})"

    with ThreadPoolExecutor(max_workers=min(64, len(pods))) as pool:
        results = list(pool.map(release, pods))
    none = [why for how, why in results if how == "none" and why]
    kept = [why for how, why in results if how == "kept" and why]
    lifted = len(pods) - len(none) - len(kept)
    summary = f"fences lifted on {lifted} of {len(pods)} pod(s) that stay"
    if not none and not kept:
        return f"fences lifted on {len(pods)} pod(s) that stay"
    if none:
        summary += f"; {len(none)} serve no fence, none to lift: {'; '.join(none)}"
    if kept:
        summary += f"; {len(kept)} keep theirs until the lease runs out: {'; '.join(kept)}"
    return summary
