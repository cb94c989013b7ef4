"""The rehearsal's parts that need no runner, no daemon and no act: the matrix as GitHub expands
it, the pins and the local copies, the tool cache's choice of versions, and the proxy in front
of act's artifact server (a real HTTP server on loopback behind it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from e2e.cluster.base import free_port
from e2e.rehearsal import artifacts
from e2e.rehearsal.actions import build, local_copies
from e2e.rehearsal.ledger import Ledger, LedgerError
from e2e.rehearsal.options import default_actions
from e2e.rehearsal.rehearse import _copy_worktree
from e2e.rehearsal.toolcache import _newest
from e2e.rehearsal.workflows import Pin, Workflow, WorkflowError, expand_matrix, resolve


# --- the matrix, as GitHub's documentation expands its examples -----------------------------
def test_include_extends_the_cells_it_does_not_contradict() -> None:
    matrix = {
        "fruit": ["apple", "pear"],
        "animal": ["cat", "dog"],
        "include": [
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    }
    assert expand_matrix(matrix) == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_exclude_removes_cells_before_include_adds_to_them() -> None:
    matrix = {
        "os": ["linux", "mac"],
        "python": ["3.11", "3.12"],
        "exclude": [{"os": "mac", "python": "3.11"}],
        "include": [{"os": "mac", "python": "3.11", "note": "again"}],
    }
    cells = expand_matrix(matrix)
    assert {"os": "mac", "python": "3.11", "note": "again"} in cells
    assert len(cells) == 4


def test_a_job_without_a_matrix_is_one_cell() -> None:
    assert expand_matrix({}) == [{}]


def test_a_matrix_made_by_an_expression_is_refused() -> None:
    with pytest.raises(WorkflowError, match="expression"):
        expand_matrix("${{ fromJSON(needs.plan.outputs.matrix) }}")


def test_matrix_values_are_put_in_for_each_cell() -> None:
    cells = [{"python": "3.11"}, {"python": "3.12"}]
    assert resolve("${{ matrix.python }}", cells) == {"3.11", "3.12"}
    assert resolve("3.13", cells) == {"3.13"}


# --- pins and local copies ---------------------------------------------------------------------
def _workflow(tmp_path: Path, text: str) -> Workflow:
    path = tmp_path / ".github" / "workflows" / "w.yml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return Workflow.load(path)


def test_pins_and_loose_uses_are_told_apart(tmp_path: Path) -> None:
    sha = "3d3c42e5aac5ba805825da76410c181273ba90b1"
    workflow = _workflow(
        tmp_path,
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n"
        f"      - uses: actions/checkout@{sha} # v7.0.1\n"
        "      - uses: actions/cache@v5\n",
    )
    assert workflow.pins() == [Pin("actions/checkout", sha, "v7.0.1")]
    assert workflow.unpinned() == ["w.yml: actions/cache@v5"]


def test_a_local_copy_of_another_version_is_named_a_stand_in(tmp_path: Path) -> None:
    folder = tmp_path / "setup-go"
    folder.mkdir()
    (folder / "action.yml").write_text("name: setup-go\n")
    (folder / "package.json").write_text(json.dumps({"version": "6.2.0"}))
    pin = Pin("actions/setup-go", "4a3601121dd01d1626a1e23e37211e3254c1c06c", "v6.4.0")
    (copy,), to_build = local_copies([pin], tmp_path)
    assert to_build == []
    assert copy.stands_in
    assert "stand-in, the local copy of 6.2.0" in copy.line()
    assert copy.act_flag() == f"actions/setup-go@{pin.sha}={folder}"


def test_an_action_without_a_local_copy_is_named_with_what_to_do(tmp_path: Path) -> None:
    pin = Pin("actions/download-artifact", "37930b1c2abaa49bbe596cd826c3c89aef350131", "v7.0.0")
    with pytest.raises(
        WorkflowError, match=r"(?s)actions/download-artifact@37930b1.*--actions DIR"
    ):
        local_copies([pin], tmp_path)


UPLOAD = Pin("actions/upload-artifact", "043fb46d1a93c77aae656e7c1c64a875d1fc6a0a", "v7.0.1")


def test_upload_artifact_without_a_copy_is_built_here(tmp_path: Path) -> None:
    assert local_copies([UPLOAD], tmp_path) == ([], [UPLOAD])


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm builds the stand-in")
def test_the_upload_artifact_stand_in_builds_and_runs(tmp_path: Path) -> None:
    # Real npm (the registry answers here), real node; no artifact server: the stand-in runs
    # up to the point where it would need one.
    copy = build(UPLOAD, tmp_path / "cache", tmp_path / "npm.log")
    assert copy.stands_in
    assert "on @actions/artifact 6.2.1 (npm)" in copy.line()
    assert build(UPLOAD, tmp_path / "cache", tmp_path / "npm.log").folder == copy.folder

    def upload(path: Path, if_none: str) -> subprocess.CompletedProcess[str]:
        inputs = {
            "NAME": "a",
            "PATH": str(path),
            "IF-NO-FILES-FOUND": if_none,
            "INCLUDE-HIDDEN-FILES": "false",
            "OVERWRITE": "false",
            "COMPRESSION-LEVEL": "6",
            "RETENTION-DAYS": "0",
        }
        env = {"PATH": os.environ["PATH"], **{f"INPUT_{k}": v for k, v in inputs.items()}}
        return subprocess.run(
            ["node", str(copy.folder / "index.js")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = tmp_path / "none"
    refused = upload(missing, "error")
    assert refused.returncode == 1, refused.stdout
    assert f"::error::no files were found with the provided path: {missing}" in refused.stdout
    warned = upload(missing, "warn")
    assert warned.returncode == 0, warned.stdout
    assert "::warning::no files were found" in warned.stdout
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("a")
    # Files found: it goes on to the upload, which needs act's runtime token.
    asked = upload(tmp_path / "files", "error")
    assert "ACTIONS_RUNTIME_TOKEN" in asked.stdout, asked.stdout


def test_the_tool_cache_takes_the_newest_release_a_version_covers() -> None:
    have = ["3.11.2", "3.11.7", "3.12.1", "3.1.4"]
    assert _newest(have, "3.11") == "3.11.7"
    assert _newest(have, "3.1") == "3.1.4"
    assert _newest(have, "3.11.2") == "3.11.2"
    assert _newest(have, "3.14") is None


# --- the artifact proxy --------------------------------------------------------------------------
class _Upstream(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers.get("Authorization", ""), body))
        answer = json.dumps({"ok": True, "signedUploadUrl": SIGNED}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def upstream() -> Iterator[int]:
    _Upstream.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


TWIRP = "twirp/github.actions.results.api.v1.ArtifactService"
# As act signs a blob URL: base64 padding left bare, spaces as +, a plus as %2B.
SIGNED = (
    "http://127.0.0.1:1/twirp/x/UploadArtifact?sig=UEm67nrM_-7T=&expires=2026-12-06+21"
    "%3A55%3A14.1+%2B0000+UTC&artifactName=e2e&taskID=1"
)


def test_the_proxy_drops_only_create_artifacts_mime_type(upstream: int) -> None:
    request = {"name": "e2e", "version": 7, "mime_type": "application/zip"}
    with artifacts.proxy(upstream) as url:
        answer = requests.post(
            f"{url}{TWIRP}/CreateArtifact",
            json=request,
            headers={"Authorization": "Bearer t"},
            timeout=10,
        )
    assert answer.status_code == 200
    assert answer.json()["signedUploadUrl"] == SIGNED.replace("7T=&", "7T%3D&")
    ((path, authorization, body),) = _Upstream.seen
    assert path == f"/{TWIRP}/CreateArtifact"
    assert authorization == "Bearer t"
    assert json.loads(body) == {"name": "e2e", "version": 7}


def test_a_signed_url_keeps_its_values_with_its_padding_percent_encoded() -> None:
    """The blob client drops a bare `=` from a query value; act then cannot read `sig`."""
    encoded = artifacts.encoded_query(SIGNED)
    assert "sig=UEm67nrM_-7T%3D&" in encoded
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(encoded).query) == urllib.parse.parse_qs(
        urllib.parse.urlsplit(SIGNED).query
    )


def test_the_proxy_passes_other_requests_on_unchanged(upstream: int) -> None:
    body = json.dumps({"name": "e2e", "mime_type": "kept here"}).encode()
    with artifacts.proxy(upstream) as url:
        answer = requests.post(f"{url}{TWIRP}/FinalizeArtifact", data=body, timeout=10)
    assert answer.status_code == 200
    assert _Upstream.seen[0][2] == body


def test_the_proxy_reads_a_chunked_body_and_still_drops_mime_type(upstream: int) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "e2e", '
        yield b'"mime_type": "application/zip"}'

    with artifacts.proxy(upstream) as url:
        answer = requests.post(f"{url}{TWIRP}/CreateArtifact", data=chunks(), timeout=10)
    assert answer.status_code == 200
    assert json.loads(_Upstream.seen[0][2]) == {"name": "e2e"}


def test_the_proxy_answers_502_when_acts_server_is_gone() -> None:
    with artifacts.proxy(free_port()) as url:
        answer = requests.post(f"{url}{TWIRP}/CreateArtifact", json={}, timeout=10)
    assert answer.status_code == 502


# --- the ledger and the working tree ---------------------------------------------------------
def test_a_ledger_that_cannot_be_read_stops_the_undo_rather_than_forgetting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.json"
    assert Ledger.load(path) is None  # none: nothing was changed
    path.write_text('{"runner_existed": false, "docker_gr')
    with pytest.raises(LedgerError, match="cannot be read"):
        Ledger.load(path)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_working_tree_is_rehearsed_with_every_change_since_head(tmp_path: Path) -> None:
    repo, clone = tmp_path / "repo", tmp_path / "clone"
    repo.mkdir()
    _git(repo, "init", "-q")
    for name in ("kept", "edited", "staged", "moved", "gone"):
        (repo / name).write_text(name)
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (repo / "edited").write_text("edited again")  # not staged
    (repo / "staged").write_text("staged again")
    _git(repo, "add", "staged")
    _git(repo, "mv", "moved", "renamed")
    _git(repo, "rm", "-q", "gone")
    (repo / "new").write_text("new")  # untracked
    _copy_worktree(repo, clone)
    contents = {p.name: p.read_text() for p in clone.iterdir() if p.is_file()}
    assert contents == {
        "kept": "kept",
        "edited": "edited again",
        "staged": "staged again",
        "renamed": "moved",
        "new": "new",
    }
    assert not (clone / "gone").exists()


def test_a_fresh_clone_finds_the_action_copies_beside_the_checkout_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPGRADE_GATE_ACTIONS", raising=False)
    copies = tmp_path / "work" / "shared" / "github-actions"
    copies.mkdir(parents=True)
    origin = tmp_path / "work" / "main"
    origin.mkdir()
    _git(origin, "init", "-q")
    clone = tmp_path / "ci" / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    assert default_actions(origin) == copies
    assert default_actions(clone) == copies
    monkeypatch.setenv("UPGRADE_GATE_ACTIONS", str(tmp_path / "mine"))
    assert default_actions(clone) == tmp_path / "mine"


def test_a_workflow_outside_the_repository_is_refused_in_one_line(tmp_path: Path) -> None:
    outside = tmp_path / "w.yml"
    outside.write_text("on: push\n")
    done = subprocess.run(
        [sys.executable, "-m", "e2e.rehearsal", str(outside), "--worktree"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"{outside}: a workflow file of this repository (it runs in a copy of the repository, "
        "as on GitHub); commit it, or use --worktree"
    ]
