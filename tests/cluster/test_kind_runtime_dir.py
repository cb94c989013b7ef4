"""Where the kind provider keeps its lock and PID files: somewhere its user may write.

GitHub's runner and a laptop are not root. Before, every user got /run/upgrade-gate/kind, and
the first `up` of a non-root user failed with PermissionError before any cluster existed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster.base import ClusterError
from e2e.cluster.providers.kind.settings import runtime_dir

# A user that is not root: this one where the tests run as someone else (GitHub), else an
# invented one, whose directories the test (root) hands over with chown.
USER = os.geteuid() or 4242


def _owned(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(mode=mode)
    path.chmod(mode)
    if os.geteuid() == 0:
        os.chown(path, USER, -1)
    return path


@contextlib.contextmanager
def as_the_user() -> Iterator[None]:
    """The block as USER (root only changes its effective UID, and takes it back)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(USER)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory like /tmp: anyone may make entries, only their owner remove them."""
    path = Path(tempfile.mkdtemp(prefix="runtime-dir-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


def test_root_keeps_its_runtime_files_in_run() -> None:
    assert runtime_dir(euid=0, environ={}) == Path("/run/upgrade-gate/kind")


def test_a_user_with_a_runtime_directory_keeps_them_there(tmp_path: Path) -> None:
    xdg = _owned(tmp_path / "xdg")
    found = runtime_dir(euid=USER, environ={"XDG_RUNTIME_DIR": str(xdg)}, tmp=tmp_path)
    assert found == xdg / "upgrade-gate" / "kind"


def test_a_user_without_one_gets_a_private_directory_in_tmp(shared_tmp: Path) -> None:
    with as_the_user():
        found = runtime_dir(euid=USER, environ={}, tmp=shared_tmp)
        found.mkdir(parents=True)  # what the provider does with it: its user may
    top = shared_tmp / f"upgrade-gate-{USER}"
    assert found == top / "kind"
    info = top.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == USER


def test_the_private_directory_made_before_is_used_again(tmp_path: Path) -> None:
    top = _owned(tmp_path / f"upgrade-gate-{USER}")
    assert runtime_dir(euid=USER, environ={}, tmp=tmp_path) == top / "kind"


def test_a_runtime_directory_that_is_not_the_users_is_not_used(tmp_path: Path) -> None:
    other = tmp_path / "someone-elses"
    other.mkdir(mode=0o755)
    top = _owned(tmp_path / f"upgrade-gate-{USER}")
    assert runtime_dir(euid=USER, environ={"XDG_RUNTIME_DIR": str(other)}, tmp=tmp_path) == (
        top / "kind"
    )


@pytest.mark.parametrize("what", ["open to others", "a link", "someone else's"])
def test_a_tmp_directory_that_others_could_control_is_refused(tmp_path: Path, what: str) -> None:
    top = tmp_path / f"upgrade-gate-{USER}"
    if what == "open to others":
        _owned(top, 0o777)
    elif what == "a link":
        top.symlink_to(_owned(tmp_path / "elsewhere"))
    else:
        top.mkdir(mode=0o700)
        if os.geteuid() != 0:
            pytest.skip("only root can make a directory someone else owns")
        os.chown(top, USER + 1, -1)
    with pytest.raises(ClusterError, match="not a directory of UID"):
        runtime_dir(euid=USER, environ={}, tmp=tmp_path)


def test_the_kind_provider_of_a_user_takes_its_lock_where_it_may(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug: `up` as a user that is not root took its lock under /run and failed."""
    from e2e.cluster.host.locks import exclusive
    from e2e.cluster.providers.kind.settings import KindSettings

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    with as_the_user():
        settings = KindSettings()
        lock = settings.run_dir.parent / f"{settings.run_dir.name}.lock"
        with exclusive(lock, "another kind up/down"):
            settings.daemon.run_dir.mkdir(parents=True)
    assert settings.run_dir.is_relative_to(shared_tmp)
