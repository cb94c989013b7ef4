"""Build the cluster's Go binaries from the Go module proxy, cached by version.

No release binaries can be downloaded here, but the Go module proxy serves k8s.io/kubernetes.
Its go.mod points every k8s.io staging module at ./staging, which a module download does not
contain, so the build happens in a throwaway module that requires k8s.io/kubernetes and
replaces each staging module with its published v0.<minor>.<patch> twin. The version
variables upstream's Makefile stamps in are stamped in here too, so `kubectl version` and the
node's kubeletVersion tell the truth.

Each binary lands in <cache>/kubernetes/<version>/bin/ next to a stamp naming what it was
built from; a binary whose stamp matches is never rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from e2e.providers.base import Progress, ProviderError
from e2e.providers.local.commands import run
from e2e.providers.local.settings import Settings

log = logging.getLogger("e2e.local.binaries")

KUBERNETES_MODULE = "k8s.io/kubernetes"
# Built from the k8s.io/kubernetes module, in this order (the slowest first is no faster).
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
CRI_SWEEP = "cri-sweep"
CRI_SWEEP_SOURCE = Path(__file__).with_name("crisweep") / "main.go"
COREDNS_MODULE = "github.com/coredns/coredns"
REGISTRY_MODULE = "github.com/distribution/distribution/v3"

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", re.MULTILINE)


@dataclass(frozen=True)
class ModuleInfo:
    path: str
    version: str
    dir: Path
    go_mod: Path
    commit: str
    time: str


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries that run on any host, built by this machine's Go and no other.
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOWORK="off", GOFLAGS="-mod=mod")
    return env


def download_module(path: str, version: str, cwd: Path, log_file: Path) -> ModuleInfo:
    done = run(["go", "mod", "download", "-json", f"{path}@{version}"], cwd=cwd, env=go_env())
    info = json.loads(done.stdout)
    if "Error" in info:
        raise ProviderError(f"go mod download {path}@{version}: {info['Error']}")
    stamp = json.loads(Path(info["Info"]).read_text())
    with log_file.open("a") as sink:
        sink.write(f"downloaded {path}@{version} to {info['Dir']}\n")
    return ModuleInfo(
        path=path,
        version=version,
        dir=Path(info["Dir"]),
        go_mod=Path(info["GoMod"]),
        commit=info.get("Origin", {}).get("Hash", ""),
        time=stamp.get("Time", ""),
    )


def staging_replacements(go_mod_text: str, minor: str, version: str) -> list[str]:
    """The `replace` lines that swap ./staging paths for published module versions."""
    patch = version.rsplit(".", 1)[1]
    staging_version = f"v0.{minor}.{patch}"
    modules = sorted(set(_STAGING_REPLACE.findall(go_mod_text)))
    if not modules:
        raise ProviderError("k8s.io/kubernetes go.mod lists no ./staging replacements")
    return [f"\t{module} => {module} {staging_version}" for module in modules]


class GoBinaries:
    """The cluster's binaries: present and stamped, or built now."""

    def __init__(self, settings: Settings, progress: Progress) -> None:
        self.settings = settings
        self.progress = progress
        self.src_dir = settings.kubernetes_dir / "src"
        self.log_file = settings.kubernetes_dir / "build.log"

    # --- stamps ------------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        if name == CRI_SWEEP:
            source = hashlib.sha256(CRI_SWEEP_SOURCE.read_bytes()).hexdigest()[:16]
            return f"{self.settings.kubernetes_version}+{source}"
        if name == "coredns":
            return self.settings.coredns_version
        if name == "registry":
            return self.settings.registry_version
        return self.settings.kubernetes_version

    def _stamp(self, name: str) -> Path:
        binary = self.settings.binary(name)
        return binary.with_name(f".{name}.stamp")

    def is_current(self, name: str) -> bool:
        stamp = self._stamp(name)
        return (
            self.settings.binary(name).is_file()
            and stamp.is_file()
            and stamp.read_text().strip() == self._key(name)
        )

    def missing(self) -> list[str]:
        names = [*KUBERNETES_COMMANDS, CRI_SWEEP]
        return [name for name in names if not self.is_current(name)]

    # --- builds --------------------------------------------------------------------------------
    def ensure_kubernetes(self) -> None:
        missing = self.missing()
        if not missing:
            self.progress.line(
                f"kubernetes {self.settings.kubernetes_version} binaries: cached in "
                f"{self.settings.kubernetes_bin}"
            )
            return
        self.settings.kubernetes_bin.mkdir(parents=True, exist_ok=True)
        with self.progress.phase(
            "go-module-setup", f"{KUBERNETES_MODULE}@{self.settings.kubernetes_version}"
        ):
            module = self._prepare_module()
        for name in missing:
            with self.progress.phase(f"build {name}"):
                self._build_kubernetes_command(name, module)

    def _prepare_module(self) -> ModuleInfo:
        self.src_dir.mkdir(parents=True, exist_ok=True)
        version = self.settings.kubernetes_version
        module = download_module(KUBERNETES_MODULE, version, self.src_dir.parent, self.log_file)
        replaces = staging_replacements(module.go_mod.read_text(), self.settings.minor, version)
        go_mod = "\n".join(
            [
                "// Generated by e2e/providers/local/binaries.py: a throwaway module that builds",
                f"// the {version} commands from the Go module proxy.",
                "module upgrade-gate.local/kubebuild",
                "",
                "go 1.24.0",
                "",
                f"require {KUBERNETES_MODULE} {version}",
                "",
                "replace (",
                *replaces,
                ")",
                "",
            ]
        )
        tools = "\n".join(
            [
                "//go:build tools",
                "",
                "package kubebuild",
                "",
                "import (",
                *[f'\t_ "{KUBERNETES_MODULE}/cmd/{name}"' for name in KUBERNETES_COMMANDS],
                ")",
                "",
            ]
        )
        changed = self._write_if_changed(self.src_dir / "go.mod.in", go_mod)
        changed |= self._write_if_changed(self.src_dir / "tools.go", tools)
        sweep_dir = self.src_dir / "cmd" / CRI_SWEEP
        sweep_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CRI_SWEEP_SOURCE, sweep_dir / "main.go")
        if changed or not (self.src_dir / "go.sum").is_file():
            # go.mod.in keeps the generated form; tidy rewrites go.mod with the full graph.
            (self.src_dir / "go.mod").write_text(go_mod)
            (self.src_dir / "go.sum").unlink(missing_ok=True)
            run(["go", "mod", "tidy"], cwd=self.src_dir, env=go_env(), log_file=self.log_file)
        return module

    @staticmethod
    def _write_if_changed(path: Path, text: str) -> bool:
        if path.is_file() and path.read_text() == text:
            return False
        path.write_text(text)
        return True

    def _ldflags(self, module: ModuleInfo) -> str:
        version = self.settings.kubernetes_version
        stamps = {
            "gitVersion": version,
            "gitMajor": version.lstrip("v").split(".")[0],
            "gitMinor": self.settings.minor,
            "gitCommit": module.commit,
            "gitTreeState": "clean",
            "buildDate": module.time,
        }
        flags = ["-s", "-w"]
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [f"-X {package}.{key}={value}" for key, value in stamps.items() if value]
        return " ".join(flags)

    def _build_kubernetes_command(self, name: str, module: ModuleInfo) -> None:
        package = f"./cmd/{CRI_SWEEP}" if name == CRI_SWEEP else f"{KUBERNETES_MODULE}/cmd/{name}"
        self._go_build(
            name,
            ["go", "build", "-trimpath", "-ldflags", self._ldflags(module), "-o", "{out}", package],
            cwd=self.src_dir,
        )

    def _go_build(
        self, name: str, argv: list[str], cwd: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        target = self.settings.binary(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
            out = Path(tmp) / name
            env = go_env()
            env.update({k: v.replace("{outdir}", tmp) for k, v in (extra_env or {}).items()})
            args = [a.replace("{out}", str(out)).replace("{outdir}", tmp) for a in argv]
            run(args, cwd=cwd, env=env, log_file=self.log_file)
            if not out.is_file():
                raise ProviderError(f"{name}: the build wrote no binary; see {self.log_file}")
            out.replace(target)
        self._stamp(name).write_text(self._key(name) + "\n")
        log.info("built %s -> %s", name, target)

    def ensure_coredns(self) -> None:
        if not self.is_current("coredns"):
            self._go_install(
                "coredns",
                COREDNS_MODULE,
                self.settings.coredns_version,
                COREDNS_MODULE,
                commit_variable=f"{COREDNS_MODULE}/coremain.GitCommit",
            )

    def ensure_registry(self) -> Path:
        """The CNCF distribution registry, for tests of the paths that push images."""
        if not self.is_current("registry"):
            self._go_install(
                "registry",
                REGISTRY_MODULE,
                self.settings.registry_version,
                f"{REGISTRY_MODULE}/cmd/registry",
            )
        return self.settings.binary("registry")

    def _go_install(
        self,
        name: str,
        module: str,
        version: str,
        package: str,
        commit_variable: str | None = None,
    ) -> None:
        """`go install package@version` of a module whose go.mod needs no replaces."""
        workdir = self.settings.binary(name).parent
        workdir.mkdir(parents=True, exist_ok=True)
        with self.progress.phase(f"build {name}", f"{module}@{version}"):
            info = download_module(module, version, workdir, self.log_file)
            ldflags = "-s -w"
            if commit_variable:
                ldflags += f" -X {commit_variable}={info.commit[:12]}"
            # `go install` ignores any go.mod around it; GOFLAGS=-mod=mod would be refused.
            self._go_build(
                name,
                ["go", "install", "-trimpath", "-ldflags", ldflags, f"{package}@{version}"],
                cwd=workdir,
                extra_env={"GOBIN": "{outdir}", "GOFLAGS": ""},
            )

    def coredns_available(self) -> bool:
        return self.is_current("coredns")
