"""The pre-upgrade hook: hold the upgrade until every pod of the release is idle."""

from upgrade_gate.hook.wait import Exit, Options, Outcome, Waiter

__all__ = ["Exit", "Options", "Outcome", "Waiter"]
