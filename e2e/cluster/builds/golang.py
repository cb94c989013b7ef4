"""Go binaries from the Go module proxy, each cached under a key of its recipe.

Three ways to build, one per kind of module:

- `go_install`: `go install module/package@version`, for a module whose go.mod has no
  replace lines (CoreDNS, the distribution registry, kind, crictl, local-path-provisioner);
- `ModuleBuild`: a throwaway module that requires the target and builds from there, for
  modules whose go.mod has replace lines that `go install` refuses (etcd's server);
- `KubernetesBuild`: the same for k8s.io/kubernetes, whose go.mod points every k8s.io staging
  module at ./staging, which a module download does not contain: the throwaway module replaces
  each with its published v0.<minor>.<patch> twin, and the version variables upstream's
  Makefile stamps in are stamped in here too, so `kubectl version` and the node's
  kubeletVersion tell the truth.

Every binary lands in <cache>/<name or kubernetes>/<version>/bin/ next to a stamp holding its
recipe key (record.py); a binary whose stamp matches is never rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from e2e.cluster.base import ClusterError, Progress
from e2e.cluster.builds.record import Built, file_hash, is_stamped, recipe_key, write_stamp
from e2e.cluster.host.commands import run
from e2e.cluster.host.locks import exclusive

log = logging.getLogger("e2e.cluster.builds.golang")

KUBERNETES_MODULE = "k8s.io/kubernetes"
# Every command the throwaway Kubernetes module can build; a provider asks for some of them.
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "kubeadm",
)
# Bumped when the way a binary is built changes (flags, layout), so that caches rebuild.
RECIPE = 2

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", re.MULTILINE)
_RELEASE = re.compile(r"v(\d+)\.(\d+)\.(\d+)")


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


def release_minor(version: str) -> str:
    """ "34" for "v1.34.4"."""
    match = _RELEASE.fullmatch(version)
    if not match:
        raise ClusterError(f"not a release version: {version}")
    return match.group(2)


def download_module(path: str, version: str, cwd: Path, log_file: Path) -> ModuleInfo:
    cwd.mkdir(parents=True, exist_ok=True)
    done = run(["go", "mod", "download", "-json", f"{path}@{version}"], cwd=cwd, env=go_env())
    info = json.loads(done.stdout)
    if "Error" in info:
        raise ClusterError(f"go mod download {path}@{version}: {info['Error']}")
    stamp = json.loads(Path(info["Info"]).read_text())
    log_file.parent.mkdir(parents=True, exist_ok=True)
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
        raise ClusterError("k8s.io/kubernetes go.mod lists no ./staging replacements")
    return [f"\t{module} => {module} {staging_version}" for module in modules]


def build_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """One build per directory at a time: the providers (and several test sessions) share the
    cache; whoever waited finds the stamps of what the other built."""
    return exclusive(directory / ".build.lock", f"another build in {directory}")


def _build_into(
    target: Path, argv: Sequence[str], cwd: Path, log_file: Path, env: Mapping[str, str]
) -> None:
    """Run a go build whose argv names its output `{out}` (or GOBIN `{outdir}`), then move it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    name = target.name
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        out = Path(tmp) / name
        full_env = go_env()
        full_env.update({k: v.replace("{outdir}", tmp) for k, v in env.items()})
        args = [a.replace("{out}", str(out)).replace("{outdir}", tmp) for a in argv]
        run(args, cwd=cwd, env=full_env, log_file=log_file)
        if not out.is_file():
            raise ClusterError(f"{name}: the build wrote no binary; see {log_file}")
        out.replace(target)
    log.info("built %s", target)


def go_install(
    name: str,
    module: str,
    version: str,
    package: str,
    cache: Path,
    progress: Progress,
    ldflags: Sequence[str] = (),
    commit_variable: str | None = None,
) -> Built:
    """`go install package@version` into <cache>/<name>/<version>/bin/<binary>."""
    workdir = cache / name / version
    binary = workdir / "bin" / package.rsplit("/", 1)[-1]
    log_file = workdir / "build.log"
    recipe = {
        "module": module,
        "version": version,
        "package": package,
        "ldflags": list(ldflags),
        "commit_variable": commit_variable,
        "recipe": RECIPE,
    }
    key = recipe_key(recipe)
    if is_stamped(binary, key):
        return Built(name, binary, version, key, "cached")
    with build_lock(workdir), progress.phase(f"build {name}", f"{module}@{version}"):
        if is_stamped(binary, key):  # built meanwhile by whoever held the lock
            return Built(name, binary, version, key, "cached")
        info = download_module(module, version, workdir, log_file)
        flags = ["-s", "-w", *ldflags]
        if commit_variable and info.commit:
            flags.append(f"-X {commit_variable}={info.commit[:12]}")
        # `go install` ignores any go.mod around it; GOFLAGS=-mod=mod would be refused.
        _build_into(
            binary,
            ["go", "install", "-trimpath", "-ldflags", " ".join(flags), f"{package}@{version}"],
            cwd=workdir,
            log_file=log_file,
            env={"GOBIN": "{outdir}", "GOFLAGS": ""},
        )
        write_stamp(binary, key)
    return Built(name, binary, version, key, "built")


@dataclass(frozen=True)
class ThrowawayModule:
    """A generated module that requires what it builds: the target's replace lines then
    do not apply (only the main module's do), and ours say where the target's went."""

    path: str
    directory: Path
    requires: Mapping[str, str]
    imports: Sequence[str]  # main packages a tools.go imports, so `go mod tidy` keeps them
    replaces: Sequence[str] = ()
    local: Mapping[str, Path] = field(default_factory=dict)  # our commands: name -> main.go

    def go_mod(self) -> str:
        lines = [
            "// Generated by e2e/cluster/builds/golang.py: a throwaway module that builds from the",
            "// Go module proxy.",
            f"module {self.path}",
            "",
            "go 1.24.0",
            "",
            *[f"require {module} {version}" for module, version in sorted(self.requires.items())],
            "",
        ]
        if self.replaces:
            lines += ["replace (", *self.replaces, ")", ""]
        return "\n".join(lines)

    def tools_go(self) -> str:
        package = re.sub(r"\W", "", self.path.rsplit("/", 1)[-1])
        return "\n".join(
            [
                "//go:build tools",
                "",
                f"package {package}",
                "",
                "import (",
                *[f'\t_ "{imported}"' for imported in self.imports],
                ")",
                "",
            ]
        )

    def prepare(self, log_file: Path) -> None:
        """Write go.mod and tools.go; `go mod tidy` only when they changed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        go_mod = self.go_mod()
        changed = _write_if_changed(self.directory / "go.mod.in", go_mod)
        changed |= _write_if_changed(self.directory / "tools.go", self.tools_go())
        for name, source in self.local.items():
            command_dir = self.directory / "cmd" / name
            command_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, command_dir / "main.go")
        if changed or not (self.directory / "go.sum").is_file():
            # go.mod.in keeps the generated form; tidy rewrites go.mod with the full graph.
            (self.directory / "go.mod").write_text(go_mod)
            (self.directory / "go.sum").unlink(missing_ok=True)
            run(["go", "mod", "tidy"], cwd=self.directory, env=go_env(), log_file=log_file)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


class ModuleBuild:
    """One command of a module built inside a throwaway module that requires it."""

    def __init__(
        self,
        name: str,
        module: str,
        version: str,
        package: str,
        cache: Path,
        progress: Progress,
        ldflags: Sequence[str] = (),
        commit_variable: str | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.version = version
        self.package = package
        self.progress = progress
        self.ldflags = list(ldflags)
        self.commit_variable = commit_variable
        self.dir = cache / name / version
        self.binary = self.dir / "bin" / name
        self.log_file = self.dir / "build.log"
        self.key = recipe_key(
            {
                "module": module,
                "version": version,
                "package": package,
                "ldflags": self.ldflags,
                "commit_variable": commit_variable,
                "recipe": RECIPE,
            }
        )

    def ensure(self) -> Built:
        if is_stamped(self.binary, self.key):
            return Built(self.name, self.binary, self.version, self.key, "cached")
        with (
            build_lock(self.dir),
            self.progress.phase(f"build {self.name}", f"{self.module}@{self.version}"),
        ):
            if is_stamped(self.binary, self.key):  # built meanwhile by whoever held the lock
                return Built(self.name, self.binary, self.version, self.key, "cached")
            info = download_module(self.module, self.version, self.dir, self.log_file)
            source = ThrowawayModule(
                path=f"upgrade-gate.local/{self.name}build",
                directory=self.dir / "src",
                requires={self.module: self.version},
                imports=[self.package],
            )
            source.prepare(self.log_file)
            flags = ["-s", "-w", *self.ldflags]
            if self.commit_variable and info.commit:
                flags.append(f"-X {self.commit_variable}={info.commit[:12]}")
            _build_into(
                self.binary,
                [
                    *("go", "build", "-trimpath", "-ldflags", " ".join(flags)),
                    *("-o", "{out}", self.package),
                ],
                cwd=source.directory,
                log_file=self.log_file,
                env={},
            )
            write_stamp(self.binary, self.key)
        return Built(self.name, self.binary, self.version, self.key, "built")


class KubernetesBuild:
    """Kubernetes commands (and small commands of ours beside them), stamped like upstream."""

    def __init__(
        self,
        version: str,
        cache: Path,
        progress: Progress,
        local: Mapping[str, Path] | None = None,
    ) -> None:
        self.version = version
        self.minor = release_minor(version)
        self.progress = progress
        self.local = dict(local or {})
        self.dir = cache / "kubernetes" / version
        self.bin_dir = self.dir / "bin"
        self.src_dir = self.dir / "src"
        self.log_file = self.dir / "build.log"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def key(self, name: str) -> str:
        recipe: dict[str, object] = {
            "module": KUBERNETES_MODULE,
            "version": self.version,
            "command": name,
            "recipe": RECIPE,
        }
        if name in self.local:
            recipe["source"] = file_hash(self.local[name])
        return recipe_key(recipe)

    def missing(self, names: Sequence[str]) -> list[str]:
        return [name for name in names if not is_stamped(self.binary(name), self.key(name))]

    def ensure(self, names: Sequence[str]) -> dict[str, Built]:
        unknown = set(names) - set(KUBERNETES_COMMANDS) - set(self.local)
        if unknown:
            raise ClusterError(f"not a command this build knows: {sorted(unknown)}")
        missing = self.missing(names)
        if missing:
            with build_lock(self.dir):
                missing = self.missing(names)  # what another build left to do
                self.bin_dir.mkdir(parents=True, exist_ok=True)
                if missing:
                    with self.progress.phase(
                        "go-module-setup", f"{KUBERNETES_MODULE}@{self.version}"
                    ):
                        module = self._prepare_module()
                for name in missing:
                    with self.progress.phase(f"build {name}"):
                        self._build(name, module)
        if not missing:
            self.progress.line(f"kubernetes {self.version} binaries: cached in {self.bin_dir}")
        return {
            name: Built(
                name,
                self.binary(name),
                self.version,
                self.key(name),
                "built" if name in missing else "cached",
            )
            for name in names
        }

    def _prepare_module(self) -> ModuleInfo:
        module = download_module(KUBERNETES_MODULE, self.version, self.dir, self.log_file)
        source = ThrowawayModule(
            path="upgrade-gate.local/kubebuild",
            directory=self.src_dir,
            requires={KUBERNETES_MODULE: self.version},
            imports=[f"{KUBERNETES_MODULE}/cmd/{name}" for name in KUBERNETES_COMMANDS],
            replaces=staging_replacements(module.go_mod.read_text(), self.minor, self.version),
            local=self.local,
        )
        source.prepare(self.log_file)
        return module

    def _ldflags(self, module: ModuleInfo) -> str:
        stamps = {
            "gitVersion": self.version,
            "gitMajor": self.version.lstrip("v").split(".")[0],
            "gitMinor": self.minor,
            "gitCommit": module.commit,
            "gitTreeState": "clean",
            "buildDate": module.time,
        }
        flags = ["-s", "-w"]
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [f"-X {package}.{key}={value}" for key, value in stamps.items() if value]
        return " ".join(flags)

    def _build(self, name: str, module: ModuleInfo) -> None:
        package = f"./cmd/{name}" if name in self.local else f"{KUBERNETES_MODULE}/cmd/{name}"
        target = self.binary(name)
        _build_into(
            target,
            ["go", "build", "-trimpath", "-ldflags", self._ldflags(module), "-o", "{out}", package],
            cwd=self.src_dir,
            log_file=self.log_file,
            env={},
        )
        write_stamp(target, self.key(name))
