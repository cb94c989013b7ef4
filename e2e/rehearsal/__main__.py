"""``python -m e2e.rehearsal [WORKFLOW] [JOB] [--matrix KEY:VALUE] [--make-fail] ...``

Exit status: 0 when every job rehearsed ended as it must (passed; with --make-fail, red with
its diagnostics, artifacts and summary), 1 when one did not or the host could not be put back
(what is left, on stderr), 2 when the rehearsal could not run (the reason in one line on
stderr; a defect of its own: its traceback), 130 when interrupted. The host is put back
whatever happened, SIGTERM and SIGHUP included.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from e2e.cluster.base import ClusterError
from e2e.rehearsal.options import Options
from e2e.rehearsal.rehearse import Rehearsal, RehearsalError
from e2e.rehearsal.workflows import WorkflowError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ci/rehearse",
        description="Run a GitHub workflow here, as GitHub's runner would (see e2e/rehearsal).",
    )
    Options.add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step's detail")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        Rehearsal(Options.from_args(args)).run()
    except RehearsalError as exc:
        print(f"ci/rehearse: {exc}", file=sys.stderr)
        return 1
    except (WorkflowError, ClusterError) as exc:
        print(f"ci/rehearse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(
            f"ci/rehearse: interrupted ({exc or 'Ctrl-C'}); the host was put back", file=sys.stderr
        )
        return 130
    except Exception:  # a defect of the rehearsal itself: its traceback, and exit 2
        traceback.print_exc()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
