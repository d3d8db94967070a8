"""A client that stops reading, over a real socket: bounded queue, then the policy applies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import socketio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from roomcast import App, Limits, Request
from roomcast.adapters.socketio import attach

from .servers import Client, serve

MESSAGES = 400
PAYLOAD = "x" * 50_000  # 400 x 50 kB is more than loopback's socket buffers hold
MAX_QUEUED = 50


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(policy: str) -> App:
    app = App(limits=Limits(rate=None, max_queued=MAX_QUEUED, slow_consumer=policy))  # type: ignore[arg-type]

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join("room")
        await req.respond("joined")

    @app.route("flood")
    async def flood(req: Request) -> None:
        for n in range(MESSAGES):
            await app.room("room").broadcast("n", {"n": n, "pad": PAYLOAD})
            await asyncio.sleep(0.002)  # a steady stream that a reading client keeps up with

    return app


@asynccontextmanager
async def stalled_client(url: str) -> AsyncIterator[tuple[ClientConnection, str]]:
    """A Socket.IO client over a raw websocket that joins `room`, then never reads again."""
    ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with connect(
        ws_url, max_queue=1, compression=None, ping_interval=None, close_timeout=0.5
    ) as ws:
        assert str(await ws.recv()).startswith("0")  # Engine.IO open
        await ws.send("40")  # Socket.IO connect to "/"
        connected = str(await ws.recv())
        assert connected.startswith("40")
        sid = json.loads(connected[2:])["sid"]
        await ws.send('421["join"]')
        assert str(await ws.recv()) == '431["joined"]'
        yield ws, sid


async def read_forever(ws: ClientConnection) -> None:
    while True:
        await ws.recv()


@asynccontextmanager
async def served(policy: str) -> AsyncIterator[tuple[App, socketio.AsyncServer, str]]:
    """The flooding app, under the slow-consumer `policy`, served over python-socketio."""
    app = make_app(policy)
    sio = socketio.AsyncServer(async_mode="asgi")
    attach(app, sio)
    async with serve(socketio.ASGIApp(sio)) as url:
        yield app, sio, url


def largest_queue(sio: socketio.AsyncServer) -> int:
    return max((s.queue.qsize() for s in sio.eio.sockets.values()), default=0)


async def flood_and_watch(
    sio: socketio.AsyncServer, sender: Client, readers: list[Client]
) -> tuple[list[list[int]], int]:
    await sender.emit("flood")
    peak = 0
    received: list[list[int]] = [[] for _ in readers]

    async def read(i: int, reader: Client) -> None:
        while len(received[i]) < MESSAGES:
            received[i].append((await reader.receive(timeout=20)).data["n"])

    tasks = [asyncio.create_task(read(i, r)) for i, r in enumerate(readers)]
    while not all(t.done() for t in tasks):
        peak = max(peak, largest_queue(sio))
        await asyncio.sleep(0.001)  # samples the queues until the readers are done
    for task in tasks:
        task.result()
    return received, peak


async def test_a_stalled_client_is_disconnected_and_the_others_get_everything() -> None:
    async with (
        served("disconnect") as (app, sio, url),
        stalled_client(url) as (stalled, stalled_sid),
        Client(url) as a,
        Client(url) as b,
    ):
        for reader in (a, b):
            assert await reader.call("join") == "joined"
        received, peak = await flood_and_watch(sio, a, [a, b])
        assert received == [list(range(MESSAGES))] * 2
        assert stalled_sid not in app.connections
        assert app.stats.slow_consumers_disconnected == 1
        assert await app.room("room").members() == {a.sid, b.sid}
        # No queue grew past the limit (plus the one broadcast in hand).
        assert peak <= MAX_QUEUED + 1
        # The server closed the stalled client's TCP connection rather than leaving it open
        # with megabytes unsent: reading on, the client reaches the end instead of waiting.
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(read_forever(stalled), 10)


async def test_drop_oldest_keeps_the_client_and_bounds_its_queue() -> None:
    async with (
        served("drop_oldest") as (app, sio, url),
        stalled_client(url) as (_, stalled_sid),
        Client(url) as a,
    ):
        assert await a.call("join") == "joined"
        received, peak = await flood_and_watch(sio, a, [a])
        assert received == [list(range(MESSAGES))]
        assert stalled_sid in app.connections
        assert app.stats.events_dropped > 0
        assert app.stats.slow_consumers_disconnected == 0
        assert peak <= MAX_QUEUED + 1


async def test_without_a_stalled_client_nothing_is_shed() -> None:
    async with served("disconnect") as (app, sio, url), Client(url) as a, Client(url) as b:
        for reader in (a, b):
            await reader.call("join")
        received, _ = await flood_and_watch(sio, a, [a, b])
        assert received == [list(range(MESSAGES))] * 2
        assert app.stats.slow_consumers_disconnected == 0
        assert app.stats.events_dropped == 0
