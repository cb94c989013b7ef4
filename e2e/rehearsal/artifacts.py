"""A loopback proxy in front of act's artifact server, for upload-artifact v7 and
download-artifact v8 (@actions/artifact 6), which act 0.2.89 does not yet speak.

Two things break, each found by rehearsing the e2e job:
- every ``CreateArtifact`` request carries a ``mime_type`` field, and act's server decodes
  requests strictly: ``unknown field "mime_type"``, the upload refused (nektos/act#6022, open);
- act signs the blob URLs it hands out with a padded base64 ``sig=...=`` left bare in the
  query, which the client's blob library drops when it adds its own parameters; act then
  cannot decode the signature: ``Error unauthorized`` on the first block.

The jobs reach the artifact service at ``ACTIONS_RUNTIME_URL``, which act takes from its own
environment when set: the rehearsal points it here. This proxy drops that one field from
requests, and writes the signed URLs in answers with their query percent-encoded (``%3D``, the
same values), which the client keeps. Blob uploads and downloads then go to act's server
directly, at the addresses it hands out. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

DROPPED = ("mime_type", "mimeType")
# Headers of one hop, not passed on (the lengths are set again).
HOP_BY_HOP = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "content-length",
}
# Answer fields that hold a signed blob URL (protojson writes the JSON names).
SIGNED_URLS = ("signedUploadUrl", "signed_upload_url", "signedUrl", "signed_url")


class _Handler(BaseHTTPRequestHandler):
    upstream: ClassVar[tuple[str, int]] = ("127.0.0.1", 0)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self._body()
        if self.path.endswith("/CreateArtifact") and body:
            body = _edited(body, _drop_mime_type)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(*self.upstream, timeout=300)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self.send_error(502, f"act's artifact server: {exc}")
            return
        finally:
            connection.close()
        if answer.status == 200 and self.path.rsplit("/", 1)[-1] in (
            "CreateArtifact",
            "GetSignedArtifactURL",
        ):
            data = _edited(data, _encode_signed_urls)
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        """The request's body, whether it has a length or comes in chunks."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward  # noqa: N815


def _edited(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """A JSON object's bytes after `edit`; anything else as it came."""
    try:
        document = json.loads(data)
    except ValueError:
        return data
    if not isinstance(document, dict):
        return data
    edit(document)
    return json.dumps(document).encode()


def _drop_mime_type(request: dict[str, Any]) -> None:
    for key in DROPPED:
        request.pop(key, None)


def _encode_signed_urls(answer: dict[str, Any]) -> None:
    for key in SIGNED_URLS:
        if isinstance(answer.get(key), str):
            answer[key] = encoded_query(answer[key])


def encoded_query(url: str) -> str:
    """`url` with each query value percent-encoded: ``sig=ab=`` becomes ``sig=ab%3D``."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote_plus)
    return urllib.parse.urlunsplit(parts._replace(query=query))


@contextmanager
def proxy(upstream_port: int) -> Iterator[str]:
    """The proxy's URL (``http://127.0.0.1:PORT/``) while the block runs."""
    handler = type(
        "Handler", (_Handler,), {"upstream": ("127.0.0.1", upstream_port), "dropped": []}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="artifact-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
