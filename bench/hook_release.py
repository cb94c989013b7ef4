"""Hook release time at N pods: from the last operation ending to the hook's exit 0.

N real app processes (gunicorn, one per "pod") on loopback. Each trial starts
an operation on every pod, with lengths spread so one pod is clearly last,
runs ``python -m upgrade_gate.hook wait --endpoints ...`` and waits until it has fenced every
pod; the figure is the hook's exit moment minus the last ``finished_at``.
If the pods were waited on one after another, the time would grow with N.

    python -m bench.hook_release [--sizes 1,10,100] [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bench._stats import ms, parse_time, percentile, table
from e2e.loopback import TOKEN, AppProcess


def trial(apps: list[AppProcess], pool: ThreadPoolExecutor) -> float:
    n = len(apps)
    base = 1.0 + n * 0.02  # time enough for the hook to start and fence every pod
    ops = list(pool.map(lambda ia: ia[1].start_operation(base + 0.3 * ia[0] / n), enumerate(apps)))
    hook = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upgrade_gate.hook",
            "wait",
            "--endpoints",
            ",".join(a.endpoint for a in apps),
            "--timeout",
            "120",
            "--hold",
            "0",
        ],
        env={**os.environ, "UPGRADE_GATE_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    code = hook.wait()
    exited = datetime.now(UTC)
    assert code == 0, hook.stderr.read() if hook.stderr else code
    records = list(pool.map(lambda pair: pair[0].operation(pair[1]), zip(apps, ops, strict=True)))
    assert all(r["state"] == "succeeded" for r in records)
    last = max(parse_time(r["finished_at"]) for r in records)
    fenced_in_time = all(parse_time(r["started_at"]) < last for r in records)
    assert fenced_in_time
    # Release the fences left by the hook, so the next trial's work is accepted.
    list(pool.map(lambda a: a.delete("/drain", headers={"Authorization": f"Bearer {TOKEN}"}), apps))
    return (exited - last).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    rows = [["pods", "trials", "p50", "max", "p50 per pod"]]
    with ThreadPoolExecutor(max_workers=32) as pool:
        for n in sizes:
            started = time.monotonic()
            apps = [AppProcess(threads=8) for _ in range(n)]
            try:
                with ThreadPoolExecutor(max_workers=4) as starter:  # 2 cores: start gently
                    list(starter.map(lambda a: a.start(timeout=120), apps))
                print(
                    f"{n} app process(es) up in {time.monotonic() - started:.1f}s", file=sys.stderr
                )
                trial(apps, pool)  # warm-up
                times = [trial(apps, pool) for _ in range(args.trials)]
            finally:
                list(pool.map(lambda a: a.stop(), apps))
            p50 = percentile(times, 50)
            rows.append([str(n), str(len(times)), ms(p50), ms(max(times)), ms(p50 / n)])
    print("Hook release time (last operation ends -> hook exits 0), loopback, real servers")
    print(table(rows))
    print("target: p50 <= 50 ms at 100 pods; growth far slower than N")


if __name__ == "__main__":
    main()
