"""`BodyLimit`: HTTP bodies over the limit are refused early, with 413, on a real server."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest
import socketio

from roomcast import App
from roomcast.adapters.socketio import BodyLimit, attach

from .servers import serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_asgi() -> Any:
    sio = socketio.AsyncServer(async_mode="asgi")
    attach(App(), sio)
    return BodyLimit(socketio.ASGIApp(sio), max_bytes=sio.eio.max_http_buffer_size)


async def request(url: str, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a raw HTTP request, the body in chunks; return the status line."""
    host, port = url.removeprefix("http://").split(":")
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(head)
        try:
            for chunk in body_chunks:
                await stream.send(chunk)
        except (anyio.BrokenResourceError, ConnectionError):
            pass  # the server answered and closed before taking it all
        with anyio.fail_after(5):
            reply = await stream.receive()
    return reply.split(b"\r\n", 1)[0][:12]


async def polling_sid(url: str) -> str:
    """Open a long-polling Engine.IO session; return its sid."""
    host, port = url.removeprefix("http://").split(":")
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        with anyio.fail_after(5):
            reply = await stream.receive()
    found = re.search(rb'"sid":"([^"]+)"', reply)
    assert found is not None, reply
    return found.group(1).decode()


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read() -> None:
    async with serve(make_asgi()) as url:
        head = (
            b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        # Not one byte of the 50 MB is sent: the answer comes from the headers alone.
        assert await request(url, head, []) == b"HTTP/1.1 413"


async def test_a_chunked_body_is_refused_once_it_passes_the_limit() -> None:
    async with serve(make_asgi()) as url:
        sid = await polling_sid(url)  # a live session, whose POSTs Engine.IO does read
        head = (
            b"POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n" % sid.encode()
            + b"Host: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (100_000, b"x" * 100_000)
        # 1.1 MB, no more: what a server refusing early leaves unread would reset the socket.
        assert await request(url, head, [chunk] * 11) == b"HTTP/1.1 413"


async def test_what_is_under_the_limit_is_served_as_before() -> None:
    async with serve(make_asgi()) as url:
        sid = await polling_sid(url)
        body = b"40"  # a long-polling client connecting to the namespace "/"
        head = (
            b"POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n" % sid.encode()
            + b"Host: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert await request(url, head, [body]) == b"HTTP/1.1 200"
