"""Providers over real TLS, against a loopback server whose certificate a local CA (trustme)
signed: the provider's ``ca_cert`` is trusted, the system's CAs alone are not, a certificate
for another name is refused, and a bad ``ca_cert`` is a config error that says what to fix."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from ingress.http1 import ConnectError, Pool
from ingress.providers.base import UpstreamCall
from ingress.routing.deployments import LiveProvider
from schemas.routing_config import ProviderSettings, ResilienceSettings

ANSWER = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)


class TlsServer:
    def __init__(self, ca: trustme.CA, *names: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(self.context)
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/chat/completions"


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    pem = tmp_path / "internal-ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


async def _serving(server: TlsServer) -> asyncio.Server:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server.context)
    server.port = listening.sockets[0].getsockname()[1]
    return listening


@pytest.fixture
async def server(ca: tuple[trustme.CA, Path]) -> AsyncIterator[TlsServer]:
    tls = TlsServer(ca[0], "127.0.0.1", "localhost")
    listening = await _serving(tls)
    yield tls
    listening.close()


async def test_the_providers_ca_is_trusted_and_the_tls_connection_reused(
    server: TlsServer, ca: tuple[trustme.CA, Path]
) -> None:
    pool = Pool(limit=4, connect_timeout_s=5, ca_cert=str(ca[1]))
    for _ in range(3):
        response = await pool.request("POST", server.url, {}, b"{}")
        assert response.status == 200
        assert await response.read() == b'{"ok":true}'
        response.release()
    pool.close()
    assert server.connections == 1


async def test_without_the_ca_the_certificate_is_refused(server: TlsServer) -> None:
    pool = Pool(limit=4, connect_timeout_s=5)  # the system's CAs only
    with pytest.raises(ConnectError, match="SSLCertVerificationError"):
        await pool.request("POST", server.url, {}, b"{}")
    pool.close()


async def test_a_certificate_for_another_name_is_refused(ca: tuple[trustme.CA, Path]) -> None:
    other = TlsServer(ca[0], "tollgate.test")  # signed by the trusted CA, for another host
    listening = await _serving(other)
    pool = Pool(limit=4, connect_timeout_s=5, ca_cert=str(ca[1]))
    try:
        with pytest.raises(ConnectError, match="SSLCertVerificationError"):
            await pool.request("POST", other.url, {}, b"{}")
    finally:
        pool.close()
        listening.close()


async def test_a_providers_ca_cert_reaches_its_transport(
    server: TlsServer, ca: tuple[trustme.CA, Path]
) -> None:
    settings = ProviderSettings(
        kind="openai_compatible", base_url=f"https://127.0.0.1:{server.port}/v1", ca_cert=ca[1]
    )
    provider = LiveProvider.build("internal", settings, ResilienceSettings())
    try:
        answer = await provider.transport.send(UpstreamCall(server.url, b"{}"))
    finally:
        await provider.transport.close()
    assert answer.status == 200
    assert answer.body == b'{"ok":true}'


def test_a_missing_or_unreadable_ca_cert_is_a_config_error(tmp_path: Path) -> None:
    base = {"kind": "openai_compatible", "base_url": "https://vllm.internal/v1"}
    with pytest.raises(ValidationError, match=r"no file at .*nowhere\.pem: give the PEM file"):
        ProviderSettings.model_validate({**base, "ca_cert": str(tmp_path / "nowhere.pem")})
    garbage = tmp_path / "not-a-cert.pem"
    garbage.write_text("this is not a certificate\n")
    with pytest.raises(ValidationError, match="holds no usable CA certificate"):
        ProviderSettings.model_validate({**base, "ca_cert": str(garbage)})
