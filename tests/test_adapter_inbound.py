"""What a hostile Socket.IO client sends, against a real server: bounded, answered, logged once.

Each test talks to a python-socketio server under uvicorn over a bare websocket, packet by
packet, as an attacker would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import socketio
from websockets.exceptions import ConnectionClosed

from roomcast import App, Limits, Request
from roomcast.adapters import _internals
from roomcast.adapters.socketio import SocketIOTransport, attach

from .servers import RawClient, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # python-socketio is asyncio-based


class Server:
    def __init__(self, limits: Limits | None = None) -> None:
        self.app = App(limits=limits)
        self.sio = socketio.AsyncServer(async_mode="asgi")
        self.transport: SocketIOTransport = attach(self.app, self.sio)

        @self.app.route("echo")
        async def echo(req: Request) -> Any:
            return req.data


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    s = Server()
    async with serve(socketio.ASGIApp(s.sio)) as url:
        yield s, url


async def closed(client: RawClient, timeout: float = 5.0) -> bool:
    """Whether the server closes the connection within `timeout` (reading what comes)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                text = await client.ws.recv()
                if text == "2":
                    await client.ws.send("3")
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False


async def test_an_event_announcing_too_many_attachments_closes_at_once(
    server: tuple[Server, str], caplog: pytest.LogCaptureFixture
) -> None:
    s, url = server
    async with RawClient(url) as bomb, RawClient(url) as other:
        await bomb.ws.send('459999999999-["echo",{"_placeholder":true,"num":0}]')
        assert await closed(bomb)
        eio_sid = next(iter(s.sio.eio.sockets), None)
        assert eio_sid is None or _internals.pending_binary(s.sio, eio_sid) is None
        assert await other.call("echo", "still here") == "still here"
    assert s.app.stats.refused_connections == 1
    assert "an event announced 9999999999 attachments" in caplog.text


async def test_attachments_over_max_payload_close_the_connection(
    server: tuple[Server, str],
) -> None:
    s, url = server
    async with RawClient(url) as bomb:
        await bomb.ws.send('452-["echo",{"_placeholder":true,"num":0}]')
        await bomb.ws.send(b"x" * 100_000)
        await bomb.ws.send(b"y" * 100_000)  # 200 KB in all: over the 128 KiB max_payload
        assert await closed(bomb)
    assert s.app.stats.refused_connections == 1


async def test_binary_attachments_within_the_limits_still_work(
    server: tuple[Server, str],
) -> None:
    s, url = server
    async with RawClient(url) as client:
        await client.ws.send('451-0["echo",{"_placeholder":true,"num":0}]')
        await client.ws.send(b"\x00\x01\x02")
        reply = await client.ws.recv()
        assert reply == '461-0[{"_placeholder":true,"num":0}]'
        assert await client.ws.recv() == b"\x00\x01\x02"
    assert s.app.stats.refused_connections == 0


@pytest.mark.parametrize(
    ("packet", "ack_id"),
    [
        ('42{"a":1}', None),  # an object, not an event's list
        ('42"str"', None),  # a string: not the event "s" with ["t","r"]
        ("4299[]", 99),  # no event name, but an ack id: the ack carries the error
        ('427[1,"x"]', 7),  # a name that is not a string
        ('42["x",', None),  # cut short
        ("49", None),  # no such packet type
        ("425" + "[" * 2000 + "]" * 2000, 5),  # nested past what the parser takes
    ],
)
async def test_a_malformed_packet_is_answered_and_the_connection_stays(
    server: tuple[Server, str], packet: str, ack_id: int | None
) -> None:
    s, url = server
    async with RawClient(url) as client:
        await client.ws.send(packet)
        kind, name, data = await client.receive()
        error = {"code": "invalid_payload", "message": "Malformed packet."}
        if ack_id is None:
            assert (kind, name, data) == ("event", "error", {**error, "event": None})
        else:
            assert (kind, name, data) == ("ack", ack_id, {"error": error})
        assert await client.call("echo", 1) == 1
    assert s.app.stats.malformed == 1


async def test_garbage_is_logged_once_and_a_connection_that_keeps_sending_it_is_closed(
    server: tuple[Server, str], caplog: pytest.LogCaptureFixture
) -> None:
    s, url = server
    caplog.set_level(logging.INFO)
    async with RawClient(url) as client:
        for _ in range(9):
            await client.ws.send('42{"a":1}')
            assert (await client.receive())[1] == "error"
        await client.ws.send('42["x",')  # the tenth
        assert await closed(client)
    warnings = [r for r in caplog.records if r.name == "roomcast"]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert "malformed packet" in warnings[0].getMessage()
    assert "10 malformed packets" in warnings[1].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # no traceback from anyone
    assert s.app.stats.malformed == 10


async def test_events_waiting_their_turn_are_bounded() -> None:
    s = Server(Limits(max_pending=3, rate=None))
    release = asyncio.Event()

    @s.app.route("wait")
    async def wait(req: Request) -> Any:
        await release.wait()
        return req.data

    async with serve(socketio.ASGIApp(s.sio)) as url, RawClient(url) as client:
        for n in range(5):
            await client.ws.send(f"42{n}" + json.dumps(["wait", n]))
        # The first three wait their turn; the next two are refused before they are kept.
        answers = [await client.receive() for _ in range(2)]
        assert answers == [
            (
                "ack",
                n,
                {
                    "error": {
                        "code": "rate_limited",
                        "message": "Too many events waiting: slow down.",
                    }
                },
            )
            for n in (3, 4)
        ]
        release.set()
        assert [await client.receive() for _ in range(3)] == [("ack", n, n) for n in range(3)]


async def test_a_closed_connection_leaves_nothing_of_its_websocket_behind(
    server: tuple[Server, str],
) -> None:
    """python-engineio's ping task holds a socket for up to a ping interval after it closes;
    through the environ of its websocket that used to hold the whole connection (its last
    frames included): thousands of shed readers a minute added up to hundreds of MB."""
    s, url = server
    sockets: list[Any] = []

    gone = anyio.Event()

    @s.app.route("probe")
    async def probe(req: Request) -> None:
        sockets.append(_internals.engineio_socket(s.sio, req.sid, "/"))

    @s.app.on_disconnect
    async def bye(req: Request) -> None:
        gone.set()

    async with RawClient(url) as client:
        assert await client.call("probe") is None
        watch = _internals.upgrade_listener(sockets[0])
        assert watch is not None
        assert getattr(watch, "environ", None) is not None  # what the fast path needs
    with anyio.fail_after(5):  # the server learns of the close a moment later
        await gone.wait()
    assert getattr(watch, "environ", None) is None
