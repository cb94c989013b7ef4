"""The sample application: long operations, the gate's first user."""

from upgrade_gate_sample.factory import create_app, create_management_app

__all__ = ["create_app", "create_management_app"]
