"""The cluster's certificates and kubeconfigs, made with `cryptography`.

One CA signs everything; identities follow kubeadm's (system:masters for the admin and the API
server's kubelet client, system:node:<name> in system:nodes for the kubelet, the component
users the default RBAC roles are bound to). ECDSA P-256 keys: fast to make, accepted by every
component, and by the API server for service-account tokens (ES256).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertSpec:
    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    server: bool = False
    client: bool = False
    dns_names: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass
class ClusterPki:
    directory: Path
    pairs: dict[str, Pair] = field(default_factory=dict)

    @property
    def ca(self) -> Pair:
        return self.pairs["ca"]

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.directory / "sa.pub"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_usage(ca: bool) -> x509.KeyUsage:
    # ECDSA keys sign; only the CA signs certificates and CRLs.
    return x509.KeyUsage(
        digital_signature=True,
        key_encipherment=False,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    spec: CertSpec,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    usages = []
    if spec.server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if spec.client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec.common_name, spec.organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ips]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _make_ca(directory: Path) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("upgrade-gate-local-ca")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    pair = Pair(directory / "ca.crt", directory / "ca.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pair.key, key)
    return pair, cert, key


def cert_specs(node_name: str, node_ip: str, service_ip: str, domain: str) -> list[CertSpec]:
    api_names = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{domain}",
        "localhost",
        node_name,
    )
    return [
        CertSpec(
            "kube-apiserver",
            "kube-apiserver",
            server=True,
            dns_names=api_names,
            ips=("127.0.0.1", node_ip, service_ip),
        ),
        CertSpec(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            ("system:masters",),
            client=True,
        ),
        CertSpec("admin", "upgrade-gate-admin", ("system:masters",), client=True),
        CertSpec("kube-controller-manager", "system:kube-controller-manager", client=True),
        CertSpec("kube-scheduler", "system:kube-scheduler", client=True),
        CertSpec("kube-proxy", "system:kube-proxy", client=True),
        CertSpec("kubelet-client", f"system:node:{node_name}", ("system:nodes",), client=True),
        CertSpec(
            "kubelet-serving",
            node_name,
            server=True,
            dns_names=(node_name, "localhost"),
            ips=("127.0.0.1", node_ip),
        ),
    ]


def make_pki(
    directory: Path, node_name: str, node_ip: str, service_ip: str, domain: str
) -> ClusterPki:
    """Write a fresh CA, every component's pair and the service-account key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    pki = ClusterPki(directory)
    ca_pair, ca_cert, ca_key = _make_ca(directory)
    pki.pairs["ca"] = ca_pair
    for spec in cert_specs(node_name, node_ip, service_ip, domain):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(spec, key, ca_cert, ca_key)
        pair = Pair(directory / f"{spec.name}.crt", directory / f"{spec.name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        pki.pairs[spec.name] = pair
    sa_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki.service_account_key, sa_key)
    pki.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


def load_pki(directory: Path) -> ClusterPki:
    pki = ClusterPki(directory)
    for cert in directory.glob("*.crt"):
        pki.pairs[cert.stem] = Pair(cert, cert.with_suffix(".key"))
    return pki


def write_kubeconfig(
    path: Path, server: str, ca: Path, pair: Pair, user: str, embed: bool = False
) -> None:
    """A kubeconfig in JSON (which is YAML); embedded data for the one people copy around."""
    cluster: dict[str, str] = {"server": server}
    credentials: dict[str, str] = {}
    if embed:
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
        credentials["client-certificate-data"] = base64.b64encode(pair.cert.read_bytes()).decode()
        credentials["client-key-data"] = base64.b64encode(pair.key.read_bytes()).decode()
    else:
        cluster["certificate-authority"] = str(ca)
        credentials["client-certificate"] = str(pair.cert)
        credentials["client-key"] = str(pair.key)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "upgrade-gate-local", "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": "upgrade-gate-local",
                "context": {"cluster": "upgrade-gate-local", "user": user},
            }
        ],
        "current-context": "upgrade-gate-local",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
