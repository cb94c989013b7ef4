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


def test_a_directory_that_holds_files_now_is_kept_and_named(tmp_path: Path) -> None:
    modules = tmp_path / "lib" / "modules"
    (modules / "empty").mkdir(parents=True)
    (modules / "6.1.0").mkdir()
    (modules / "6.1.0" / "modules.dep").write_text("")
    ledger = KindLedger(absent_paths=[str(modules)])
    assert ledger.remove_absent_paths() == [str(modules)]
    assert (modules / "6.1.0" / "modules.dep").is_file()
    assert not (modules / "empty").exists()
