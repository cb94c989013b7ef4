"""Command lines and config files of the cluster's daemons.

Every path points into the provider's state or runtime directories, never at the distro
defaults (/var/lib/kubelet, /var/lib/containerd, /opt/containerd, /etc/cni, ...), so that
`down` can remove all of it and nothing of another runtime on the host is touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from e2e.providers.local.pki import ClusterPki
from e2e.providers.local.settings import CGROUP_ROOT, NODE_NAME, Settings

CNI_BIN_DIR = "/usr/lib/cni"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def kubeconfig_path(settings: Settings, user: str) -> Path:
    return settings.etc_dir / f"{user}.kubeconfig"


def etcd(settings: Settings) -> list[str]:
    client = f"http://127.0.0.1:{settings.ports.etcd_client}"
    peer = f"http://127.0.0.1:{settings.ports.etcd_peer}"
    # Plain HTTP on loopback only: the API server is its one client.
    return [
        "etcd",
        "--name",
        NODE_NAME,
        "--data-dir",
        str(settings.etcd_data),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"{NODE_NAME}={peer}",
        "--initial-cluster-state",
        "new",
        "--log-level",
        "warn",
        "--logger",
        "zap",
    ]


def kube_apiserver(settings: Settings, pki: ClusterPki, node_ip: str) -> list[str]:
    p = pki.pairs
    return [
        str(settings.binary("kube-apiserver")),
        f"--etcd-servers=http://127.0.0.1:{settings.ports.etcd_client}",
        "--bind-address=0.0.0.0",
        f"--secure-port={settings.ports.apiserver}",
        f"--advertise-address={node_ip}",
        f"--cert-dir={settings.data_dir / 'apiserver'}",
        f"--tls-cert-file={p['kube-apiserver'].cert}",
        f"--tls-private-key-file={p['kube-apiserver'].key}",
        f"--client-ca-file={pki.ca.cert}",
        f"--kubelet-client-certificate={p['apiserver-kubelet-client'].cert}",
        f"--kubelet-client-key={p['apiserver-kubelet-client'].key}",
        f"--kubelet-certificate-authority={pki.ca.cert}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--service-account-issuer=https://kubernetes.default.svc.{settings.cluster_domain}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={settings.service_cidr}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--profiling=false",
        "--event-ttl=1h",
        "--v=1",
    ]


def _component_kubeconfig_flags(kubeconfig: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]


def kube_controller_manager(settings: Settings, pki: ClusterPki) -> list[str]:
    return [
        str(settings.binary("kube-controller-manager")),
        *_component_kubeconfig_flags(kubeconfig_path(settings, "kube-controller-manager")),
        "--bind-address=127.0.0.1",
        f"--secure-port={settings.ports.controller_manager}",
        f"--cert-dir={settings.data_dir / 'controller-manager'}",
        f"--root-ca-file={pki.ca.cert}",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        "--use-service-account-credentials=true",
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={settings.cluster_cidr}",
        "--node-cidr-mask-size=24",
        f"--service-cluster-ip-range={settings.service_cidr}",
        # One of each: no election to wait for.
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def kube_scheduler(settings: Settings) -> list[str]:
    return [
        str(settings.binary("kube-scheduler")),
        *_component_kubeconfig_flags(kubeconfig_path(settings, "kube-scheduler")),
        "--bind-address=127.0.0.1",
        f"--secure-port={settings.ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def containerd_config(settings: Settings) -> Path:
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    text = f"""\
# Written by e2e/providers/local/components.py.
version = 2
root = "{settings.containerd_root}"
state = "{settings.containerd_state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{settings.containerd_socket}"

[ttrpc]
  address = "{settings.run_dir / "containerd-ttrpc.sock"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{settings.containerd_root / "opt"}"

{cri}
  sandbox_image = "{settings.pause_image}"
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host's bounding set lacks;
  # kubelet asks -998 for sandboxes and -997 for Guaranteed pods. This clamps such requests to
  # containerd's own score instead of failing the container.
  restrict_oom_score_adj = true
  # Network namespaces under our state dir, not /var/run/netns, so `down` finds them all.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
  discard_unpacked_layers = false

{cri[:-1]}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri[:-1]}.containerd.runtimes.runc.options]
  SystemdCgroup = false

{cri[:-1]}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{settings.cni_conf_dir}"
  max_conf_num = 1

{cri[:-1]}.registry]
  config_path = ""
"""
    return _write(settings.etc_dir / "containerd.toml", text)


def containerd(settings: Settings) -> list[str]:
    return ["containerd", "--config", str(containerd_config(settings)), "--log-level", "warn"]


def kubelet_config(settings: Settings, pki: ClusterPki) -> Path:
    resolv = _write(
        settings.etc_dir / "resolv.conf",
        # Pods with dnsPolicy Default (CoreDNS itself) get no upstream: nothing leaves the host.
        "# upgrade-gate local cluster: no upstream resolver\noptions ndots:5\n",
    )
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "0.0.0.0",
        "port": settings.ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": settings.ports.kubelet_healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca.cert)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki.pairs["kubelet-serving"].cert),
        "tlsPrivateKeyFile": str(pki.pairs["kubelet-serving"].key),
        "containerRuntimeEndpoint": f"unix://{settings.containerd_socket}",
        "imageServiceEndpoint": f"unix://{settings.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        # All pod cgroups under /upgrade-gate in each hierarchy: ours at a glance, and removable.
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "cgroupsPerQOS": True,
        # 1.34 still runs on cgroup v1 when told not to fail; say it, rather than rely on it.
        "failCgroupV1": False,
        "clusterDomain": settings.cluster_domain,
        "clusterDNS": [settings.dns_ip],
        "resolvConf": str(resolv),
        "podLogsDir": str(settings.pod_logs),
        "volumePluginDir": str(settings.kubelet_root / "volume-plugins"),
        # Without CAP_SYS_RESOURCE kubelet cannot lower its own score either.
        "oomScoreAdj": 0,
        "failSwapOn": False,
        "serializeImagePulls": False,
        # No image can be pulled again once collected: never collect, never evict on disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "maxPods": 110,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "shutdownGracePeriod": "0s",
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
    }
    return _write(settings.etc_dir / "kubelet.json", json.dumps(config, indent=2) + "\n")


def kubelet(settings: Settings, pki: ClusterPki, node_ip: str) -> list[str]:
    return [
        str(settings.binary("kubelet")),
        f"--config={kubelet_config(settings, pki)}",
        f"--kubeconfig={kubeconfig_path(settings, 'kubelet')}",
        f"--root-dir={settings.kubelet_root}",
        f"--cert-dir={settings.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={node_ip}",
        # So that image GC (were it ever to run) keeps the sandbox image no registry can give back.
        f"--pod-infra-container-image={settings.pause_image}",
        "--v=1",
    ]


def kube_proxy_config(settings: Settings) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig_path(settings, "kube-proxy"))},
        "hostnameOverride": NODE_NAME,
        "bindAddress": "0.0.0.0",
        "healthzBindAddress": f"127.0.0.1:{settings.ports.kube_proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{settings.ports.kube_proxy_metrics}",
        "clusterCIDR": settings.cluster_cidr,
        "detectLocalMode": "ClusterCIDR",
        "oomScoreAdj": 0,
        # Zero leaves the host's conntrack sysctls as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {
            "masqueradeAll": False,
            # Node ports on 127.0.0.1 would need route_localnet=1 on the host; not needed.
            "localhostNodePorts": False,
            "syncPeriod": "30s",
            "minSyncPeriod": "1s",
        },
    }
    return _write(settings.etc_dir / "kube-proxy.json", json.dumps(config, indent=2) + "\n")


def kube_proxy(settings: Settings) -> list[str]:
    return [
        str(settings.binary("kube-proxy")),
        f"--config={kube_proxy_config(settings)}",
        "--v=1",
    ]
