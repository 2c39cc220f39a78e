"""Providers through an HTTP proxy, over real sockets: a loopback proxy that tunnels CONNECT
to a TLS server (a local CA's certificate) and forwards absolute-form http requests, with
its credentials checked; refusals are clear and never carry the credentials."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from ingress.http1 import ConnectError, Pool
from ingress.providers.base import UpstreamCall
from ingress.routing.deployments import LiveProvider
from schemas.config import ConfigError, load_config
from schemas.routing_config import ProviderSettings, ResilienceSettings

CREDENTIALS = ("gw", "s3cr:et")
PROXY_AUTH = "Basic " + base64.b64encode(b"gw:s3cr:et").decode()
ANSWER = b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"ok":true}'


async def _request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length")), 0)
    return head, await reader.readexactly(length)


async def _origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The provider: answers every request on the connection."""
    try:
        while True:
            await _request(reader)
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@dataclass
class Proxy:
    """Tunnels CONNECT, answers an absolute-form request itself, refuses wrong credentials."""

    origin_port: int = 0
    heads: list[bytes] = field(default_factory=list)
    port: int = 0

    def url(self, credentials: tuple[str, str] | None = CREDENTIALS) -> str:
        if credentials is None:
            return f"http://127.0.0.1:{self.port}"
        user, password = credentials
        return f"http://{user}:{password.replace(':', '%3A')}@127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, _ = await _request(reader)
            self.heads.append(head)
            if f"proxy-authorization: {PROXY_AUTH}".encode() not in head:
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n"
                )
                return
            if head.startswith(b"CONNECT "):
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.origin_port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            writer.write(ANSWER)  # an absolute-form http request: answered as the origin
            while True:
                self.heads.append((await _request(reader))[0])
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


@pytest.fixture
async def proxy(ca: tuple[trustme.CA, Path]) -> AsyncIterator[Proxy]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca[0].issue_cert("127.0.0.1").configure_cert(context)
    origin = await asyncio.start_server(_origin, "127.0.0.1", 0, ssl=context)
    tunnel = Proxy(origin_port=origin.sockets[0].getsockname()[1])
    listening = await asyncio.start_server(tunnel.handle, "127.0.0.1", 0)
    tunnel.port = listening.sockets[0].getsockname()[1]
    yield tunnel
    listening.close()
    origin.close()


async def _call(pool: Pool, url: str) -> bytes:
    response = await pool.request("POST", url, {"authorization": "Bearer sk-provider"}, b"{}")
    try:
        assert response.status == 200
        return await response.read()
    finally:
        response.release()


async def test_https_goes_through_a_connect_tunnel_reused_for_later_calls(
    proxy: Proxy, ca: tuple[trustme.CA, Path]
) -> None:
    pool = Pool(limit=4, connect_timeout_s=5, ca_cert=str(ca[1]), proxy=proxy.url())
    url = f"https://127.0.0.1:{proxy.origin_port}/v1/chat/completions"
    try:
        for _ in range(3):
            assert await _call(pool, url) == b'{"ok":true}'
    finally:
        pool.close()
    assert len(proxy.heads) == 1  # one tunnel, three calls
    connect = proxy.heads[0].decode()
    assert connect.startswith(f"CONNECT 127.0.0.1:{proxy.origin_port} HTTP/1.1\r\n")
    assert "Bearer sk-provider" not in connect  # the provider's key is inside the tunnel only


async def test_the_tunnel_still_checks_the_providers_certificate(proxy: Proxy) -> None:
    pool = Pool(limit=4, connect_timeout_s=5, proxy=proxy.url())  # the local CA not trusted
    url = f"https://127.0.0.1:{proxy.origin_port}/v1/chat/completions"
    try:
        with pytest.raises(ConnectError, match="SSLCertVerificationError"):
            await _call(pool, url)
    finally:
        pool.close()


async def test_http_is_sent_to_the_proxy_in_absolute_form(proxy: Proxy) -> None:
    pool = Pool(limit=4, connect_timeout_s=5, proxy=proxy.url())
    try:
        for _ in range(2):
            assert await _call(pool, "http://vllm.internal:8000/v1/chat/completions?x=1") == (
                b'{"ok":true}'
            )
    finally:
        pool.close()
    assert len(proxy.heads) == 2
    for head in proxy.heads:  # both on one kept-alive connection to the proxy
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST http://vllm.internal:8000/v1/chat/completions?x=1 HTTP/1.1"
        assert "host: vllm.internal:8000" in lines
        assert f"proxy-authorization: {PROXY_AUTH}" in lines


async def test_a_refused_tunnel_says_so_without_the_credentials(
    proxy: Proxy, ca: tuple[trustme.CA, Path]
) -> None:
    pool = Pool(limit=4, connect_timeout_s=5, ca_cert=str(ca[1]), proxy=proxy.url(("gw", "wrong")))
    url = f"https://127.0.0.1:{proxy.origin_port}/v1/chat/completions"
    try:
        with pytest.raises(ConnectError) as refused:
            await _call(pool, url)
    finally:
        pool.close()
    message = str(refused.value)
    assert "407" in message and "credentials" in message
    assert "wrong" not in message and "gw" not in message


async def test_a_providers_proxy_reaches_its_transport(
    proxy: Proxy, ca: tuple[trustme.CA, Path]
) -> None:
    base_url = f"https://127.0.0.1:{proxy.origin_port}/v1"
    settings = ProviderSettings(
        kind="openai_compatible", base_url=base_url, ca_cert=ca[1], proxy=proxy.url()
    )
    provider = LiveProvider.build("internal", settings, ResilienceSettings())
    try:
        answer = await provider.transport.send(UpstreamCall(f"{base_url}/models", b"", {}, "GET"))
    finally:
        await provider.transport.close()
    assert answer.status == 200
    assert proxy.heads[0].startswith(b"CONNECT ")


@pytest.mark.parametrize(
    "url",
    ["https://gw:hunter2@proxy:3128", "socks5://proxy:1080", "http://", "http://proxy:x", "p:1"],
)
def test_a_proxy_that_is_not_an_http_url_is_a_config_error(url: str, tmp_path: Path) -> None:
    path = tmp_path / "tollgate.yaml"
    path.write_text(
        "providers:\n  internal:\n    kind: openai_compatible\n"
        f"    base_url: https://vllm.internal/v1\n    proxy: '{url}'\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={})
    message = str(refused.value)
    assert "providers.internal.proxy" in message
    assert "a proxy is an http://[user:password@]host[:port] URL" in message
    assert "hunter2" not in message  # the value is not echoed: it may hold a password
