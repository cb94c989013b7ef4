"""The kind provider's ledger on a real filesystem: what `down` removes of the host paths that
were absent before the first `up`, and what it must leave."""

from __future__ import annotations

from pathlib import Path

from e2e.providers.kind.ledger import KindLedger


def test_paths_absent_before_are_removed_with_the_empty_directories_under_them(
    tmp_path: Path,
) -> None:
    # dockerd makes /run/docker/plugins (its plugin sockets), whatever its --exec-root: the
    # directory recorded absent is no longer empty, and a down that removed only empty ones
    # left it ("down left these behind: path /run/docker").
    run_docker = tmp_path / "run" / "docker"
    (run_docker / "plugins" / "deeper").mkdir(parents=True)
    key = tmp_path / "etc" / "docker" / "key.json"
    key.parent.mkdir(parents=True)
    key.write_text("{}")
    ledger = KindLedger(absent_paths=[str(key), str(key.parent), str(run_docker)])
    assert ledger.remove_absent_paths() == []
    assert not run_docker.exists()
    assert not key.parent.exists()
    assert (tmp_path / "run").is_dir(), "what was there before stays"


def test_a_directory_that_holds_a_file_now_is_kept_whole_and_named(tmp_path: Path) -> None:
    # A kernel package may have made /lib/modules/<version> since: not ours, not even its
    # empty directories.
    modules = tmp_path / "lib" / "modules"
    (modules / "6.1.0" / "updates").mkdir(parents=True)
    (modules / "6.1.0" / "modules.dep").write_text("")
    ledger = KindLedger(absent_paths=[str(modules)])
    assert ledger.remove_absent_paths() == [str(modules)]
    assert (modules / "6.1.0" / "modules.dep").is_file()
    assert (modules / "6.1.0" / "updates").is_dir()


def test_links_are_neither_followed_nor_removed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "empty").mkdir(parents=True)
    run_docker = tmp_path / "run-docker"
    run_docker.symlink_to(elsewhere)
    etc_docker = tmp_path / "etc-docker"
    (etc_docker / "sub").mkdir(parents=True)
    (etc_docker / "sub" / "link").symlink_to(elsewhere)
    ledger = KindLedger(absent_paths=[str(run_docker), str(etc_docker)])
    assert ledger.remove_absent_paths() == [str(run_docker), str(etc_docker)]
    assert (elsewhere / "empty").is_dir(), "the link's target untouched"
    assert (etc_docker / "sub").is_dir()
