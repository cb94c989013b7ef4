"""A reusable upgrade gate for WSGI applications.

Wrap each unit of work in :meth:`Gate.operation` (or start it with
:meth:`Gate.run_in_background`), expose the gate with :class:`UpgradeGate`, and
a Helm pre-upgrade hook can wait until the pod is idle before it is replaced.
"""

from app.gate.core import Gate, Operation, State, Status, WorkRefusedError
from app.gate.web import CONTRACT, UpgradeGate, current_gate

__all__ = [
    "CONTRACT",
    "Gate",
    "Operation",
    "State",
    "Status",
    "UpgradeGate",
    "WorkRefusedError",
    "current_gate",
]
