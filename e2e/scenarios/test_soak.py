"""Soak: random work on every replica, upgrades at random moments; nothing is cut off.

Outside the default run: ``pytest e2e -m soak --soak-rounds 10``.
"""

from __future__ import annotations

import random
import time

import pytest

from e2e.stage import Stage

pytestmark = [pytest.mark.e2e, pytest.mark.soak]


def test_random_upgrades_never_cut_work_off(stage: Stage, pytestconfig: pytest.Config) -> None:
    rounds = int(pytestconfig.getoption("--soak-rounds"))
    rng = random.Random(pytestconfig.getoption("--soak-seed"))
    stage.install("v1", replicaCount=3)
    tags = ["v2", "v1"]
    with stage.recording(f"soak: {rounds} random rounds"):
        for round_no in range(rounds):
            for pod in stage.app_pods():
                for _ in range(rng.randint(0, 2)):
                    answer = stage.kube.call(
                        stage.namespace,
                        pod.metadata.name,
                        "POST",
                        "/operations",
                        {"seconds": rng.uniform(2, 15)},
                    )
                    # 503 is fine: a pod fenced by the last round or terminating.
                    assert answer.status in (202, 503), answer
            # A random moment into the work: the delay is the experiment, not a wait.
            time.sleep(rng.uniform(0, 5))
            upgrade = stage.upgrade(tags[round_no % 2])
            assert stage.finish(upgrade, timeout=240, label=f"soak round {round_no}") == 0, (
                upgrade.output
            )
    timeline = stage.timeline()
    cut = [o for o in timeline.operations.values() if o.cut_off]
    print(f"\nsoak: {rounds} rounds, {len(timeline.operations)} operations, {len(cut)} cut off")
    assert cut == []
