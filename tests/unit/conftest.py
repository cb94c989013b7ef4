from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from e2e.loopback import AppProcess

AppFactory = Callable[..., AppProcess]


@pytest.fixture
def make_app(request: pytest.FixtureRequest) -> Iterator[AppFactory]:
    """Start real ``python -m app serve`` processes; their logs join a failure report."""
    apps: list[AppProcess] = []
    request.node.app_processes = apps

    def start(**env: Any) -> AppProcess:
        app = AppProcess({k: str(v) for k, v in env.items()})
        apps.append(app)
        return app.start()

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def app(make_app: AppFactory) -> AppProcess:
    return make_app()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for app in getattr(item, "app_processes", []):
            report.sections.append((f"app on port {app.port}", app.log()))
    return report
