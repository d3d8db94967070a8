"""Two processes of the example chat sharing rooms through Redis, with real socket.io clients.

Each test runs its own redis-server on a free port, so the processes share nothing else.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from roomcast import App
from roomcast.backends.redis import RedisBackend

from .redis_support import PrivateRedis, private_redis
from .servers import ROOT, Client, run_example

LOGS = ROOT / "artifacts"
SOCKETIO_CLIENT = ROOT / "examples/basic_chat/node_modules/socket.io-client/dist/socket.io.min.js"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def log(name: str) -> Path:
    return LOGS / f"basic_chat-{name}-{os.getpid()}.log"


@asynccontextmanager
async def passed_through(url: str, channel: str) -> AsyncIterator[anyio.Event]:
    """An event set once a message was published on `channel` (subscribed on entering)."""
    passed = anyio.Event()
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)

    async def wait() -> None:
        while await pubsub.get_message(ignore_subscribe_messages=True, timeout=1) is None:
            pass
        passed.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            yield passed
            with anyio.fail_after(5):
                await passed.wait()
    finally:
        await pubsub.aclose()
        await client.aclose()


async def members(url: str, room: str) -> frozenset[str]:
    """Ask the cluster, as a third process would."""
    async with App(backend=RedisBackend(url)) as observer:
        return await observer.room(room).members()


async def test_two_processes_chat_in_one_room(redis_server: PrivateRedis) -> None:
    with (
        run_example(log("a"), "--redis", redis_server.url) as (url_a, _),
        run_example(log("b"), "--redis", redis_server.url) as (url_b, _),
    ):
        async with Client(url_a) as alice, Client(url_b) as bob:
            # Receivers are resolved when a message reaches each process: alice's announce
            # must have gone through Redis before bob joins, or bob may get it too.
            async with passed_through(redis_server.url, "roomcast:c:room:chat") as passed:
                await alice.emit("ready", "chat")
                assert (await alice.receive()).event == "announce"
                await passed.wait()
            await bob.emit("ready", "chat")
            for client in (alice, bob):  # alice hears of bob across the processes
                msg = await client.receive()
                assert msg.event == "announce"
            assert await members(redis_server.url, "chat") == {alice.sid, bob.sid}

            await bob.emit("send", {"room": "chat", "author": "Bob", "message": "hi Alice"})
            for client in (alice, bob):
                msg = await client.receive()
                assert msg.data == {"message": "hi Alice", "author": "Bob"}

            await alice.emit("signal", {"type": "SDP", "message": "offer", "room": "chat"})
            msg = await bob.receive()
            assert (msg.event, msg.data) == (
                "signaling_message",
                {"type": "SDP", "message": "offer"},
            )
            with pytest.raises(TimeoutError):
                await alice.receive(timeout=0.3)


async def test_a_killed_process_leaves_no_members(redis_server: PrivateRedis) -> None:
    with (
        run_example(log("doomed"), "--redis", redis_server.url) as (url_a, doomed),
        run_example(log("survivor"), "--redis", redis_server.url) as (url_b, _),
    ):
        async with Client(url_b) as bob:
            alice = Client(url_a)
            await alice.__aenter__()
            await alice.emit("ready", "chat")
            await alice.receive()  # her own announce: her join is in Redis by then
            await bob.emit("ready", "chat")
            await bob.receive()
            alice_sid = alice.sid
            assert await members(redis_server.url, "chat") == {alice_sid, bob.sid}

            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
            killed = time.monotonic()
            while alice_sid in await members(redis_server.url, "chat"):
                # The default bound: dead_after (10 s) plus one heartbeat (2 s).
                assert time.monotonic() - killed < 15, "the dead process's member stayed"
                await anyio.sleep(0.5)
            assert await members(redis_server.url, "chat") == {bob.sid}
            await alice.sio.disconnect()


async def test_a_script_reaches_a_client_on_any_process(redis_server: PrivateRedis) -> None:
    """The server's hand from outside the chat processes (an HTTP handler, a job): a third
    app on the same Redis, with no transport, joins, asks and disconnects a real client."""
    with run_example(log("hand"), "--redis", redis_server.url) as (url, _):
        async with (
            Client(url) as agent,
            App(backend=RedisBackend(redis_server.url)) as desk,
        ):
            agent.sio.on("take ticket?", lambda ticket: {"taken": ticket["id"]})
            assert await desk.join(agent.sid, "ticket:7") is True
            assert await members(redis_server.url, "ticket:7") == {agent.sid}
            await desk.room("ticket:7").broadcast("message", {"text": "customer waiting"})
            assert (await agent.receive()).data == {"text": "customer waiting"}
            answer = await desk.call(agent.sid, "take ticket?", {"id": 7}, timeout=5)
            assert answer == {"taken": 7}
            assert await desk.leave(agent.sid, "ticket:7") is True
            assert await members(redis_server.url, "ticket:7") == frozenset()
            await desk.disconnect(agent.sid)
            with anyio.fail_after(5):
                await agent.sio.wait()  # returns once the server has closed the connection
            assert await desk.join("no-such-sid", "ticket:7") is False
