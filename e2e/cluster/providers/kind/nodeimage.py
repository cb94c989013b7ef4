"""A kind node image built on this machine: Go modules, Debian packages, kind's own build.

`kindest/node` comes from a registry, and none is reachable here; kind can build a node image
itself (`kind build node-image`) from a Kubernetes server tarball and a base image, fetching
only the images it was not given. This module gives it everything:

1. kind, kubeadm (with the other Kubernetes binaries), etcd at the version that kubeadm
   asks for, crictl, local-path-provisioner and CoreDNS, all from the Go module proxy
   (e2e.cluster.builds.golang);
2. a base image standing in for `kindest/base`: a debootstrap root filesystem with systemd,
   Debian's containerd 1.6, runc and CNI plugins, then what kind's images/base/Dockerfile
   does, with kind's own files (they come with its module);
3. the component images under the names kubeadm and kind expect (a static binary alone in an
   image; kube-proxy on a small Debian with iptables), saved into archives whose first tags
   file names every image, which is how kind learns they need no pulling;
4. `kind build node-image --type file` of a server tarball laid out like upstream's.

Every step is keyed by its recipe: a second run finds the node image (or each part) and
builds nothing; a version bump rebuilds what depends on it.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from e2e.cluster.base import ClusterError, Progress
from e2e.cluster.builds import images
from e2e.cluster.builds.golang import KubernetesBuild, ModuleBuild, download_module, go_install
from e2e.cluster.builds.kind import KIND_MODULE, build_kind
from e2e.cluster.builds.record import Built, file_hash, recipe_key
from e2e.cluster.host.commands import run
from e2e.cluster.host.docker import DockerClient
from e2e.cluster.providers.kind.settings import (
    CNI_LABEL,
    COREDNS_VERSION,
    IMAGE_DOMAIN,
    KindSettings,
)

log = logging.getLogger("e2e.kind.nodeimage")

# Bumped when what this module generates changes in a way the hashes below do not see.
RECIPE = 1

# What the node's root filesystem needs: kind's base image packages, with Debian's
# containerd, runc and CNI plugins standing in for the ones kind builds from source.
NODE_PACKAGES = (
    "systemd",
    "dbus",
    "conntrack",
    "iptables",
    "nftables",
    "iproute2",
    "ethtool",
    "util-linux",
    "mount",
    "kmod",
    "libseccomp2",
    "pigz",
    "bash",
    "ca-certificates",
    "curl",
    "jq",
    "procps",
    "e2fsprogs",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "socat",
    "ebtables",
)
# The small Debian under kube-proxy (iptables) and kind's local-path helper (a shell).
SMALL_PACKAGES = ("iptables", "conntrack", "nftables", "kmod")

# Steps that run beside the Go builds.
BESIDE_GO_BUILDS = ("node rootfs", "small debian")

KUBERNETES_IN_IMAGE = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "kubectl",
    "kubeadm",
)
PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd 1.6's ctr has no `info`, which kind's node-image build runs as a health check.
CTR_SHIM = """#!/bin/sh
# upgrade-gate: containerd 1.6's ctr has no `info` (kind's build asks for it); `version` is
# the same health check.
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        info) exec /usr/bin/ctr version ;;
        *) break ;;
    esac
done
exec /usr/bin/ctr "$@"
"""

# Like kubernetes-sigs/iptables-wrappers in upstream's kube-proxy image: use the iptables
# backend that already holds rules in this network namespace (ties: legacy, as kind's node
# entrypoint chooses), then run kube-proxy.
KUBE_PROXY_WRAPPER = """#!/bin/sh
# upgrade-gate: choose iptables-legacy or iptables-nft as the node did, then run kube-proxy.
legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-' )
nft=$( (timeout 5 sh -c 'iptables-nft-save; ip6tables-nft-save') 2>/dev/null | grep -c '^-' )
if [ "$legacy" -ge "$nft" ]; then mode=legacy; else mode=nft; fi
update-alternatives --set iptables /usr/sbin/iptables-$mode >/dev/null
update-alternatives --set ip6tables /usr/sbin/ip6tables-$mode >/dev/null
exec /usr/local/bin/kube-proxy.real "$@"
"""

BASE_DOCKERFILE = """FROM {rootfs}
COPY overlay/ /
# What kind's images/base/Dockerfile does, on Debian's containerd, runc and CNI plugins.
RUN set -eu; \\
    chmod 0755 /kind /kind/bin /kind/bin/* /usr/local/bin/*; \\
    find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete; \\
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
        /lib/systemd/system/local-fs.target.wants/* \\
        /lib/systemd/system/sockets.target.wants/*udev* \\
        /lib/systemd/system/sockets.target.wants/*initctl* \\
        /lib/systemd/system/basic.target.wants/*; \\
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf; \\
    ln -sf /usr/lib/systemd/systemd /sbin/init; \\
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service; \\
    systemctl mask systemd-binfmt.service; \\
    mkdir -p /etc/kubernetes/manifests /opt/cni/bin; \\
    ln -sf /usr/bin/containerd /usr/local/bin/containerd; \\
    for plugin in /usr/lib/cni/*; do ln -sf "$plugin" /opt/cni/bin/; done; \\
    rm -f /usr/lib/sysctl.d/*.conf; \\
    /usr/bin/ctr oci spec \\
        | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + \\
              {{"path": "/kind/bin/mount-product-files.sh"}}' \\
        | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json
ENV container=docker
LABEL {label}=routes
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
"""

KUBE_PROXY_DOCKERFILE = """FROM {small}
COPY kube-proxy kube-proxy.real /usr/local/bin/
RUN chmod 0755 /usr/local/bin/kube-proxy /usr/local/bin/kube-proxy.real
ENTRYPOINT ["/usr/local/bin/kube-proxy"]
"""

_KIND_IMAGE = re.compile(r'const (\w+Image) = "([^"]+)"')


def kubeadm_images(kubeadm: Path, version: str) -> dict[str, str]:
    """The images kubeadm `version` asks for, by short name: kube-apiserver, etcd, pause, ..."""
    done = run([kubeadm, "config", "images", "list", "--kubernetes-version", version])
    found = {}
    for ref in done.stdout.split():
        name = ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        found[name] = ref
    expected = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}
    expected |= {"etcd", "coredns", "pause"}
    if not expected <= set(found):
        raise ClusterError(f"kubeadm {version} listed {sorted(found)}, not {sorted(expected)}")
    return found


def kind_images(kind_source: Path) -> dict[str, str]:
    """The images kind's node-image build adds (kindnetd, local-path provisioner and helper)."""
    found = {}
    for name in ("const_cni.go", "const_storage.go"):
        text = (kind_source / "pkg" / "build" / "nodeimage" / name).read_text()
        found.update(dict(_KIND_IMAGE.findall(text)))
    wanted = {"kindnetdImage", "storageProvisionerImage", "storageHelperImage"}
    if not wanted <= set(found):
        raise ClusterError(f"kind's source names {sorted(found)}, not {sorted(wanted)}")
    return found


def tag_version(ref: str) -> str:
    return ref.rsplit(":", 1)[1]


def containerd_config(kind_config: str, pause: str) -> str:
    """kind's containerd config for containerd 1.6: no fuse-overlayfs proxy plugin (that is
    for rootless), and the sandbox image kubeadm asks for."""
    text = re.sub(
        r"\[proxy_plugins\]\n(?:#.*\n)*\[proxy_plugins\.\"fuse-overlayfs\"\]\n(?:\s+\S.*\n)*",
        "",
        kind_config,
    )
    text, count = re.subn(r'sandbox_image = "[^"]*"', f'sandbox_image = "{pause}"', text)
    if count != 1 or "fuse-overlayfs" in text.split("[plugins", 1)[0]:
        raise ClusterError("kind's containerd config.toml is not laid out as expected")
    return text


def _copy_tree(source: Path, target: Path, skip: set[str]) -> None:
    """Copy files only (the module cache is read-only: modes are set in the image)."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or relative.parts[0] in skip or path.name in skip:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / relative)


class NodeImageBuild:
    """The ordered steps to a node image, over one context: settings, Docker, progress, log."""

    def __init__(self, settings: KindSettings, docker: DockerClient, progress: Progress) -> None:
        self.settings = settings
        self.docker = docker
        self.progress = progress
        self.log_file = settings.build_log
        self.built: dict[str, Built] = {}
        self.refs: dict[str, str] = {}
        self.kind_source: Path | None = None

    # --- the steps ---------------------------------------------------------------------------
    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("kind", self._kind),
            ("kubernetes", self._kubernetes),
            ("etcd", self._etcd),
            ("crictl", self._crictl),
            ("local-path-provisioner", self._local_path_provisioner),
            ("coredns", self._coredns),
            ("pause", self._pause),
            ("node rootfs", self._node_rootfs),
            ("small debian", self._small_debian),
            ("base image", self._base_image),
            ("node image", self._node_image),
        ]

    def run(self) -> Built:
        self.settings.kind_dir.mkdir(parents=True, exist_ok=True)
        steps = self.steps()
        # The root filesystems come from Debian's mirror (network and disk, little CPU): they
        # are made beside the Go builds (CPU), and waited for before the base image.
        beside = [step for step in steps if step[0] in BESIDE_GO_BUILDS]
        first = steps[: steps.index(beside[-1]) + 1]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rootfs") as pool:
            rootfs = pool.submit(self._run_steps, beside)
            self._run_steps([step for step in first if step not in beside])
            rootfs.result()
        self._run_steps(steps[len(first) :])
        return self.built["node image"]

    def _run_steps(self, steps: list[tuple[str, Callable[[], str]]]) -> None:
        for name, step in steps:
            with self.progress.phase(f"node-image: {name}") as note:
                note.detail = step()

    def _kind(self) -> str:
        s = self.settings
        kind = build_kind(s.cache, self.progress, s.kind_version)
        self.built["kind"] = kind
        module = download_module(KIND_MODULE, s.kind_version, kind.path.parent, self.log_file)
        self.kind_source = module.dir
        self.refs.update(
            {name.removesuffix("Image"): ref for name, ref in kind_images(module.dir).items()}
        )
        return f"{kind.how}, {kind.version}"

    def _kubernetes(self) -> str:
        s = self.settings
        build = KubernetesBuild(s.kubernetes_version, s.cache, self.progress)
        binaries = build.ensure(KUBERNETES_IN_IMAGE)
        self.built.update(binaries)
        self.refs.update(kubeadm_images(binaries["kubeadm"].path, s.kubernetes_version))
        built = [name for name, b in binaries.items() if b.how == "built"]
        return f"built {', '.join(built)}" if built else "cached"

    def _etcd(self) -> str:
        # kubeadm's etcd tag is the release plus an image revision: 3.6.5-0.
        version = "v" + tag_version(self.refs["etcd"]).split("-", 1)[0]
        etcd = ModuleBuild(
            "etcd",
            "go.etcd.io/etcd/server/v3",
            version,
            "go.etcd.io/etcd/server/v3",
            self.settings.cache,
            self.progress,
            commit_variable="go.etcd.io/etcd/api/v3/version.GitSHA",
        ).ensure()
        self.built["etcd"] = etcd
        return f"{etcd.how}, {version}"

    def _crictl(self) -> str:
        version = self.settings.crictl_version
        crictl = go_install(
            "crictl",
            "sigs.k8s.io/cri-tools",
            version,
            "sigs.k8s.io/cri-tools/cmd/crictl",
            self.settings.cache,
            self.progress,
            ldflags=[f"-X sigs.k8s.io/cri-tools/pkg/version.Version={version}"],
        )
        self.built["crictl"] = crictl
        return f"{crictl.how}, {version}"

    def _local_path_provisioner(self) -> str:
        version = self.settings.local_path_provisioner_version
        module = "github.com/rancher/local-path-provisioner"
        provisioner = go_install(
            "local-path-provisioner",
            module,
            version,
            module,
            self.settings.cache,
            self.progress,
            ldflags=[f"-X main.VERSION={version}"],
        )
        self.built["local-path-provisioner"] = provisioner
        return f"{provisioner.how}, {version}"

    def _coredns(self) -> str:
        version = tag_version(self.refs["coredns"])
        module = "github.com/coredns/coredns"
        binary = go_install(
            "coredns",
            module,
            version,
            module,
            self.settings.cache,
            self.progress,
            commit_variable=f"{module}/coremain.GitCommit",
        )
        # kubeadm's own CoreDNS version: the image's cache key names it (as it always has).
        ref = f"{IMAGE_DOMAIN}/coredns:{version}"
        recipe = {"coredns": version} if version == COREDNS_VERSION else None
        image = images.ensure_binary_image(
            self.docker, "coredns", binary, ref, self.settings.images_dir, recipe=recipe
        )
        images.ensure_loaded(self.docker, image)
        self.built["coredns"] = image
        return f"binary {binary.how}, image {image.how}, {version}"

    def _pause(self) -> str:
        version = tag_version(self.refs["pause"])
        image = images.ensure_pause(
            self.docker,
            self.settings.kubernetes_version,
            version,
            f"{IMAGE_DOMAIN}/pause:{version}",
            self.settings.images_dir,
            self.log_file,
        )
        images.ensure_loaded(self.docker, image)
        self.built["pause"] = image
        return f"{image.how}, {version}"

    def _node_rootfs(self) -> str:
        rootfs = images.ensure_debian_image(
            self.docker,
            "kind-node-rootfs",
            f"{IMAGE_DOMAIN}/kind-node-rootfs:bookworm",
            NODE_PACKAGES,
            [],
            self.settings.images_dir,
            self.log_file,
            drop_docs=True,
        )
        self.built["node rootfs"] = rootfs
        return rootfs.how

    def _small_debian(self) -> str:
        small = images.ensure_debian_image(
            self.docker,
            "kind-small-debian",
            f"{IMAGE_DOMAIN}/kind-small-debian:bookworm",
            SMALL_PACKAGES,
            [PATH_ENV],
            self.settings.images_dir,
            self.log_file,
            drop_docs=True,
        )
        self.built["small debian"] = small
        return small.how

    # --- the base image ----------------------------------------------------------------------
    def _overlay(self, target: Path) -> None:
        """kind's base image files, adapted to Debian's containerd 1.6, plus crictl and ctr."""
        assert self.kind_source is not None
        files = self.kind_source / "images" / "base" / "files"
        _copy_tree(files, target, skip={"LICENSES", "containerd-fuse-overlayfs.service"})
        config = target / "etc" / "containerd" / "config.toml"
        config.write_text(containerd_config(config.read_text(), self.refs["pause"]))
        bin_dir = target / "usr" / "local" / "bin"
        shutil.copyfile(self.built["crictl"].path, bin_dir / "crictl")
        (bin_dir / "ctr").write_text(CTR_SHIM)

    def _base_image(self) -> str:
        with tempfile.TemporaryDirectory(dir=self.settings.kind_dir, prefix=".base-") as tmp:
            context = Path(tmp)
            self._overlay(context / "overlay")
            dockerfile = BASE_DOCKERFILE.format(
                rootfs=f"{self.built['node rootfs'].ref}-{self.built['node rootfs'].key}",
                label=CNI_LABEL,
            )
            overlay = {
                str(p.relative_to(context)): file_hash(p)
                for p in sorted((context / "overlay").rglob("*"))
                if p.is_file()
            }
            key = recipe_key(
                {
                    "rootfs": self.built["node rootfs"].key,
                    "dockerfile": dockerfile,
                    "overlay": recipe_key(overlay),
                    "recipe": RECIPE,
                }
            )
            ref = f"{IMAGE_DOMAIN}/kind-base:bookworm-{key}"
            how = "present"
            if not self.docker.has_image(ref):
                images.build(self.docker, context, ref, self.log_file, dockerfile)
                how = "built"
        self.built["base image"] = Built("base image", self.log_file, "bookworm", key, how, ref)
        return how

    # --- the node image ----------------------------------------------------------------------
    def node_key(self) -> str:
        parts = {name: built.key for name, built in self.built.items()}
        return recipe_key(
            {
                "parts": parts,
                "images": self.refs,
                "kube-proxy": KUBE_PROXY_WRAPPER,
                "dockerfile": KUBE_PROXY_DOCKERFILE,
                "recipe": RECIPE,
            }
        )

    def _node_image(self) -> str:
        key = self.node_key()
        ref = self.settings.node_image(key)
        if self.docker.has_image(ref):
            self.built["node image"] = Built("node image", self.log_file, "", key, "present", ref)
            return f"present: {ref}"
        work = self.settings.tmp_dir
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work, prefix=".node-") as tmp:
            tarball = self._server_tarball(Path(tmp))
            run(
                [
                    self.built["kind"].path,
                    "build",
                    "node-image",
                    "--type",
                    "file",
                    tarball,
                    "--base-image",
                    self.built["base image"].ref,
                    "--image",
                    ref,
                ],
                # kind unpacks the tarball under TMPDIR; /tmp may be small.
                env={**self.docker.full_env(), "TMPDIR": str(work)},
                log_file=self.log_file,
            )
        if not self.docker.has_image(ref):
            raise ClusterError(f"kind build node-image made no {ref}; see {self.log_file}")
        # A rebuilt tag leaves the previous image (1.2 GB) dangling in our daemon's data root.
        run(self.docker.command("image", "prune", "--force"), env=self.docker.full_env())
        self.built["node image"] = Built("node image", self.log_file, "", key, "built", ref)
        return f"built: {ref}"

    def _component_images(self, context: Path) -> None:
        """Every image the node needs, in Docker under the name kubeadm or kind gives it."""
        refs = self.refs
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
            self._binary_image(self.built[name].path, refs[name], context)
        self._binary_image(
            self.built["local-path-provisioner"].path, refs["storageProvisioner"], context
        )
        small = self.built["small debian"].ref
        for helper in ("storageHelper", "kindnetd"):
            # kindnetd is not on the Go module proxy: a placeholder that never runs (the
            # provider routes pods itself); kind's build only needs to find the name.
            images.tag(self.docker, small, refs[helper])
        proxy = context / "kube-proxy"
        proxy.mkdir()
        shutil.copyfile(self.built["kube-proxy"].path, proxy / "kube-proxy.real")
        (proxy / "kube-proxy").write_text(KUBE_PROXY_WRAPPER)
        images.build(
            self.docker,
            proxy,
            refs["kube-proxy"],
            self.log_file,
            KUBE_PROXY_DOCKERFILE.format(small=small),
        )
        images.tag(self.docker, self.built["coredns"].ref, refs["coredns"])
        images.tag(self.docker, self.built["pause"].ref, refs["pause"])

    def _binary_image(self, binary: Path, ref: str, context: Path) -> None:
        rootfs = context / f"rootfs-{binary.name}"
        images.single_binary_rootfs(binary, rootfs, "/usr/local/bin", passwd=True)
        entrypoint = json.dumps([f"/usr/local/bin/{binary.name}"])
        images.import_rootfs(self.docker, rootfs, [ref], [PATH_ENV, f"ENTRYPOINT {entrypoint}"])
        shutil.rmtree(rootfs)

    def _server_tarball(self, work: Path) -> Path:
        """kubernetes-server-linux-amd64.tar.gz as kind's `--type file` reads it."""
        self._component_images(work)
        root = work / "kubernetes"
        bin_dir = root / "server" / "bin"
        bin_dir.mkdir(parents=True)
        (root / "version").write_text(self.settings.kubernetes_version + "\n")
        for name in ("kubeadm", "kubelet", "kubectl"):
            shutil.copy2(self.built[name].path, bin_dir / name)
        refs = self.refs
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            images.write_archive(self.docker, [refs[name]], bin_dir / f"{name}.tar")
        # kind reads only the first image's tags of a manifest.json, but every name of a
        # `repositories` file: the other images ride in kube-proxy's archive.
        others = ["kube-proxy", "etcd", "coredns", "pause", "kindnetd"]
        others += ["storageProvisioner", "storageHelper"]
        images.write_archive(self.docker, [refs[n] for n in others], bin_dir / "kube-proxy.tar")
        tarball = work / "kubernetes-server-linux-amd64.tar.gz"
        with (
            gzip.open(tarball, "wb", compresslevel=1) as packed,
            tarfile.open(fileobj=packed, mode="w") as archive,
        ):
            archive.add(root, arcname="kubernetes")
        return tarball


def image_labels(docker: DockerClient, ref: str) -> dict[str, str]:
    done = subprocess.run(
        docker.command("image", "inspect", "--format", "{{json .Config.Labels}}", ref),
        env=docker.full_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {}
    labels = json.loads(done.stdout or "null")
    return dict(labels or {})
