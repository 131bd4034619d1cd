"""HTTPS on the server's port, with Spark Connect (gRPC) and the REST API side by side.

databricks-connect's ``DatabricksSession`` opens a TLS gRPC channel to the workspace's own host and port
(the ``host`` of the Databricks config, port 443 unless given), so Spark Connect has to answer on the port
the REST API answers on. Uvicorn speaks HTTP/1.1 only, and gRPC needs HTTP/2. The front here terminates
TLS and routes each connection by the protocol the client chose in the handshake (ALPN): ``grpc-exp`` or
``h2`` goes to the Spark Connect server, anything else (``http/1.1``, or no ALPN) to uvicorn; both listen
on loopback ports of their own. The server prefers ``http/1.1`` to ``h2``, so a browser, which offers
both, gets the REST API and the pages; gRPC clients offer only ``grpc-exp`` and ``h2``.

Without a certificate given (``BRICKYARD_TLS_CERT``/``_KEY``) one is made: a certificate authority and a
server certificate for ``127.0.0.1``, ``::1`` and ``localhost`` in ``<home>/tls`` (keys readable by the
owner only), renewed when it is within 30 days of expiring. Clients trust ``<home>/tls/ca.pem``:
``REQUESTS_CA_BUNDLE`` for the SDK and MLflow, ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` for gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InvalidParameterValue

log = logging.getLogger("brickyard.tls")

GRPC_PROTOCOLS = ("grpc-exp", "h2")
HANDSHAKE_SECONDS = 10.0
CHUNK = 256 << 10


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    ca: Path | None  # the authority to trust, when Brickyard made the certificate


def certificate(home: Path, cert: str | None, key: str | None) -> CertFiles:
    """The certificate to serve: the one given, or one made (and kept) under ``home/tls``."""
    if cert and key:
        for path in (cert, key):
            if not Path(path).is_file():
                raise InvalidParameterValue(f"TLS file {path} does not exist")
        return CertFiles(Path(cert), Path(key), None)
    folder = home / "tls"
    files = CertFiles(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    if not _fresh(files):
        _make(folder, files)
    return files


def _fresh(files: CertFiles) -> bool:
    from cryptography import x509

    if not all(p is not None and p.is_file() for p in (files.cert, files.key, files.ca)):
        return False
    try:
        leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    except ValueError:
        return False
    try:
        dns = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    return "*.localhost" in dns and leaf.not_valid_after_utc - dt.timedelta(days=30) > dt.datetime.now(dt.UTC)


def _make(folder: Path, files: CertFiles) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Brickyard local CA {folder.parent.name}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=825))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.DNSName("*.localhost"),  # apps' own origins: <name>.localhost
             x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=397))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    _write(files.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    _write(files.cert, leaf.public_bytes(pem) + ca.public_bytes(pem), 0o644)
    assert files.ca is not None
    _write(files.ca, ca.public_bytes(pem), 0o644)  # the CA's key is not kept: nothing else can be signed


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def server_context(files: CertFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(files.cert), str(files.key))
    except (ssl.SSLError, OSError) as exc:
        raise InvalidParameterValue(f"cannot load the TLS certificate {files.cert}: {exc}") from None
    ctx.set_alpn_protocols(["grpc-exp", "http/1.1", "h2"])  # server order: a browser's h2 offer gets HTTP/1.1
    return ctx


def https_scheme(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The ASGI app as reached through the front: requests arrived over TLS (same-origin checks compare
    the browser's ``https://`` Origin with the request's scheme)."""
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope = {**scope, "scheme": "https" if scope["type"] == "http" else "wss"}
        await app(scope, receive, send)

    return wrapped


class TlsFront:
    """Accepts TLS connections on ``sock`` and pipes each to the loopback port its protocol belongs to."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, *, http_port: int, grpc_port: int) -> None:
        self.sock = sock
        self.context = context
        self.http_port = http_port
        self.grpc_port = grpc_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, name="tls-front", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._connection, sock=self.sock, ssl=self.context, ssl_handshake_timeout=HANDSHAKE_SECONDS,
            limit=CHUNK))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(self._loop)
                for task in pending:
                    task.cancel()
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        protocol = tls.selected_alpn_protocol() if tls is not None else None
        port = self.grpc_port if protocol in GRPC_PROTOCOLS else self.http_port
        try:
            back_reader, back_writer = await asyncio.open_connection("127.0.0.1", port, limit=CHUNK)
        except OSError as exc:
            log.warning("TLS front: the %s server on port %d does not answer: %s",
                        "Spark Connect" if port == self.grpc_port else "HTTP", port, exc)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, back_writer), _pipe(back_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.contextmanager
def tls_front(ws: Any, public: socket.socket, http_port: int) -> Any:
    """HTTPS and Spark Connect on ``public`` (a listening socket) while the block runs; the REST app listens
    on loopback ``http_port`` (served with :func:`https_scheme`). Yields the certificate files."""
    from ._spark._service import start_server

    files = certificate(Path(ws.settings.home), ws.settings.tls_cert, ws.settings.tls_key)
    context = server_context(files)
    grpc_server, grpc_port = start_server(ws)
    front = TlsFront(public, context, http_port=http_port, grpc_port=grpc_port)
    try:
        front.start()
        yield files
    finally:
        front.stop()
        grpc_server.stop(2)
