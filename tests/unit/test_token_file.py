"""The drain token from a mounted file, as the chart gives it to the app and the hook.

``UPGRADE_GATE_TOKEN_FILE`` names the file; the environment then never holds
the token (crash dumps, ``/proc/*/environ`` and child processes see the
environment). The app and the hook read it the same way and refuse the same
tokens: one that cannot travel in an HTTP header stops the app at start, as
it stops the hook, rather than making every fence a 401.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import SERVERS, assert_refused_at_start
from upgrade_gate.hook import Exit

FILE_ENV = "UPGRADE_GATE_TOKEN_FILE"


def hook(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("UPGRADE_GATE_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "upgrade_gate.hook", "wait", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("server", SERVERS)
def test_the_app_and_the_hook_read_the_token_from_its_file(
    tmp_path: Path, request: pytest.FixtureRequest, server: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")  # a Secret made with --from-file
    app = AppProcess({"UPGRADE_GATE_TOKEN": "", FILE_ENV: str(token_file)}, server=server)
    request.node.app_processes = [app]
    with app:
        assert app.drain(1, token="not-it").status_code == 401
        result = hook("--endpoints", app.endpoint, "--timeout", "60", **{FILE_ENV: str(token_file)})
        assert result.returncode == Exit.OK, result.stdout + result.stderr
        holder = app.status()["lease"]["holder"]
        assert holder.startswith("hook/"), "the hook's hold lease is in place"


@pytest.mark.parametrize("server", SERVERS)
def test_an_app_whose_token_file_is_missing_does_not_start(tmp_path: Path, server: str) -> None:
    assert_refused_at_start(
        {FILE_ENV: str(tmp_path / "absent")}, f"{FILE_ENV}: no such file", server
    )


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"two words", "cannot travel in an HTTP header"),
        ("tök€n".encode(), "cannot travel in an HTTP header"),
        (b"\xff\xfe", "cannot read"),
    ],
    ids=["space", "non-ascii", "not-utf-8"],
)
def test_a_token_the_hook_would_refuse_stops_the_app_too(
    tmp_path: Path, content: bytes, complaint: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(content)
    assert_refused_at_start({FILE_ENV: str(token_file)}, complaint)
    result = hook("--endpoints", "127.0.0.1:1", **{FILE_ENV: str(token_file)})
    assert result.returncode == Exit.USAGE
    assert complaint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("server", SERVERS)
def test_a_token_in_the_environment_the_hook_would_refuse_stops_the_app(server: str) -> None:
    assert_refused_at_start(
        {"UPGRADE_GATE_TOKEN": "two words"}, "cannot travel in an HTTP header", server
    )


def test_a_token_file_that_is_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = hook("--endpoints", "127.0.0.1:1", **{FILE_ENV: str(tmp_path)})
    assert result.returncode == Exit.USAGE
    assert f"{FILE_ENV}: cannot read {tmp_path}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_hook_whose_optional_token_file_is_absent_has_no_token(tmp_path: Path) -> None:
    """Argo CD runs the hook before the Secret exists on a first sync: no pods, no fence."""
    listing = tmp_path / "pods"
    listing.write_text("")
    result = hook(
        "--endpoints-file", str(listing), "--timeout", "30", **{FILE_ENV: str(tmp_path / "absent")}
    )
    assert result.returncode == Exit.OK, result.stdout + result.stderr
    assert "no token" in result.stdout + result.stderr
