"""The pre-upgrade hook: hold the upgrade until every pod of the release is idle."""

try:
    import urllib3  # noqa: F401 (the hook's one dependency, said up front)
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f"upgrade_gate.hook needs urllib3 ({exc}): pip install 'helm-upgrade-gate[hook]'"
    ) from exc

from upgrade_gate.hook.wait import Exit, Options, Outcome, Waiter

__all__ = ["Exit", "Options", "Outcome", "Waiter"]
