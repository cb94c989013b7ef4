"""Hold a Helm upgrade until every pod of the release is idle: the upgrade gate.

Wrap each unit of work in :meth:`Gate.operation` (or start it with
:meth:`Gate.run_in_background`) and serve the gate's HTTP contract
(``upgrade-gate/v1``) beside the app: :mod:`upgrade_gate.flask` for Flask,
:mod:`upgrade_gate.asgi` for Starlette and FastAPI. The pre-upgrade hook
(:mod:`upgrade_gate.hook`) then waits until every pod is idle before Helm
replaces it.

This module and :mod:`upgrade_gate.core` import nothing outside the standard
library; each integration needs its extra (``pip install 'helm-upgrade-gate[flask]'``).
"""

from upgrade_gate.core import CONTRACT, Gate, Operation, State, Status, WorkRefusedError

__all__ = ["CONTRACT", "Gate", "Operation", "State", "Status", "WorkRefusedError"]
