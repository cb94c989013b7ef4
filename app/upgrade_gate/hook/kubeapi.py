"""The hook's Kubernetes API calls (list pods, list ReplicaSets, get one ConfigMap), over urllib3.

No client library at start: in a pod the hook reads the API server's address
from ``KUBERNETES_SERVICE_HOST``/``_PORT``, and the mounted service-account
token (read again for every call: the kubelet rotates it) and CA, as the
official clients do. Importing the kubernetes client cost the hook's pod about
a second of its start; the listings are plain JSON. Outside a cluster (tests, a
person at a terminal) a kubeconfig is read with the kubernetes client's own
loader, imported only then, so that every authentication it knows still works.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(Exception):
    """The API server answered, but not with a listing: ``status`` and its own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class ConfigError(Exception):
    """There is no way to reach the API server from here."""


@dataclass
class KubeApi:
    host: str  # https://host:port
    ca_file: str | None = None
    token_file: Path | None = None
    token: str | None = None  # "Bearer ..." as a header value, from a kubeconfig
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        self.pool = urllib3.PoolManager(
            maxsize=2,
            retries=False,
            cert_reqs="CERT_REQUIRED" if self.verify else "CERT_NONE",
            ca_certs=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
        )

    @classmethod
    def in_cluster(cls) -> KubeApi:
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
        )
        token = SERVICE_ACCOUNT / "token"
        if not host or not port or not token.exists():
            raise ConfigError("not in a pod with a service-account token")
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return cls(f"https://{host}:{port}", str(SERVICE_ACCOUNT / "ca.crt"), token_file=token)

    @classmethod
    def from_kubeconfig(cls, path: str | None) -> KubeApi:
        try:
            import yaml
            from kubernetes import client, config
        except ImportError:
            raise ConfigError(
                "reading a kubeconfig needs the kubernetes client: "
                "pip install 'helm-upgrade-gate[hook,kubeconfig]' (in a pod, none is read)"
            ) from None

        configuration = client.Configuration()
        where = path or "~/.kube/config"
        try:
            config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
        except (ValueError, TypeError, AttributeError, KeyError, yaml.YAMLError) as exc:
            # The loader's own reading of a file that is not a kubeconfig (a list, a string).
            said = " ".join(str(exc).split())  # one line, whatever the YAML reader wrote
            raise ConfigError(
                f"{where} is not a kubeconfig ({type(exc).__name__}: {said})"
            ) from None
        # The bearer token, as the client itself would send it (its key in
        # api_key changed between releases; auth_settings did not).
        settings: dict[str, Any] = dict(configuration.auth_settings())
        token = str((settings.get("BearerToken") or {}).get("value") or "") or None
        if token is not None and not _header_safe(token):
            raise ConfigError(f"the token in {where} cannot travel in an HTTP header")
        return cls(
            configuration.host.rstrip("/"),
            configuration.ssl_ca_cert,
            token=token,
            cert_file=configuration.cert_file,
            key_file=configuration.key_file,
            verify=bool(configuration.verify_ssl),
        )

    def list(self, path: str, selector: str, timeout: float) -> list[dict[str, Any]]:
        """The ``items`` of ``GET path?labelSelector=selector``.

        ApiError when the server refuses; urllib3's HTTPError when it cannot be reached.
        """
        body = self._get(f"{path}?{urlencode({'labelSelector': selector})}", timeout)
        if not isinstance(body.get("items"), list):
            raise ApiError(200, "the answer is not a list")
        items: list[dict[str, Any]] = body["items"]
        if not all(isinstance(item, dict) for item in items):
            raise ApiError(200, "the list holds items that are not objects")
        return items

    def get(self, path: str, timeout: float) -> dict[str, Any]:
        """The object at ``path``; ApiError (404: there is none) or urllib3's HTTPError."""
        return self._get(path, timeout)

    def _get(self, path_and_query: str, timeout: float) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "upgrade-gate-hook"}
        if self.token_file is not None:
            headers["Authorization"] = f"Bearer {self._file_token(self.token_file)}"
        elif self.token:
            headers["Authorization"] = self.token
        response = self.pool.request(
            "GET",
            f"{self.host}{path_and_query}",
            headers=headers,
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        )
        try:
            body = json.loads(response.data)
        except (ValueError, UnicodeDecodeError):
            body = None
        if response.status != 200:
            message = body.get("message") if isinstance(body, dict) else None
            raise ApiError(response.status, str(message or response.reason))
        if not isinstance(body, dict):
            raise ApiError(response.status, "the answer is not an object")
        return body

    @staticmethod
    def _file_token(path: Path) -> str:
        """The mounted token, read again for each call (the kubelet rotates it)."""
        try:
            token = path.read_bytes().decode("ascii").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"the token {path} is not ASCII text") from None
        if not _header_safe(token):
            raise ConfigError(f"the token {path} cannot travel in an HTTP header")
        return token


def _header_safe(token: str) -> bool:
    """Printable ASCII, as an ``Authorization: Bearer`` value must be."""
    return bool(token) and token.isascii() and token.isprintable()
