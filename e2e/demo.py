"""The main job: an operation is in flight, `helm upgrade` runs, and the operation survives.

The in-flight scenario file (e2e/scenarios/files/in-flight-upgrade.scenario.yaml),
reproduced with one helm: brings up the cluster (or reuses the running one),
builds and loads the app images v1 and v2, installs v1, starts a 25 s operation
on its pod, runs `helm upgrade` to v2 in the background, and shows each state
change as it happens. Then it prints what happened, the verdict and where the
timeline picture is. The cluster is left running for the next run;
`python -m e2e.cluster down` removes it.

    python -m e2e.demo                      # kind (three nodes), helm 3
    python -m e2e.demo --helm 4 --kind-bin ~/bin/kind --kind-kubectl-bin ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from e2e import reproduce

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "e2e" / "scenarios" / "files" / "in-flight-upgrade.scenario.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--helm", type=int, choices=[3, 4], default=3, help="Helm major version")
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=ROOT / "artifacts" / "demo",
        help="where the timeline goes",
    )
    args, passthrough = parser.parse_known_args(argv)
    return reproduce.main(
        [str(CORE), "--helm", str(args.helm), "--artifacts", str(args.artifacts), *passthrough]
    )


if __name__ == "__main__":
    sys.exit(main())
