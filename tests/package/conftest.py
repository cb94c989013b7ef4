from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wheel-dir",
        default=None,
        help="a folder holding the built wheel (tox -e package builds it there); "
        "default: build one into a temporary folder",
    )
