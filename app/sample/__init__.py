"""The sample application: long operations, the gate's first user."""

from app.sample.factory import create_app

__all__ = ["create_app"]
