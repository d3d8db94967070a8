import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from roomcast import App, ConnectionClosed, Reject, Request
from roomcast.testing import TestClient


async def test_events_of_one_connection_run_one_at_a_time_in_order() -> None:
    app = App()
    running = 0
    overlap = False
    order: list[int] = []

    @app.route("work")
    async def work(req: Request) -> None:
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        await anyio.sleep(0.001 * (req.data % 3))
        order.append(req.data)
        running -= 1
        if req.data == 49:
            await req.emit("done")

    async with TestClient(app) as client:
        for n in range(50):
            await client.emit("work", n)
        assert (await client.receive()).event == "done"
    assert order == list(range(50))
    assert not overlap


async def test_different_connections_run_concurrently() -> None:
    app = App()
    gate = anyio.Event()

    @app.route("wait")
    async def wait(req: Request) -> None:
        await gate.wait()
        await req.respond("released")

    @app.route("open")
    async def open_gate(req: Request) -> str:
        gate.set()
        return "opened"

    async with TestClient(app) as alice, TestClient(app) as bob, anyio.create_task_group() as tg:
        results: list[Any] = []

        async def call_wait() -> None:
            results.append(await alice.call("wait"))

        tg.start_soon(call_wait)
        # bob is not stuck behind alice's blocked handler
        assert await bob.call("open") == "opened"
    assert results == ["released"]


async def test_session_lives_as_long_as_the_connection() -> None:
    app = App()

    @app.on_connect
    async def remember(req: Request) -> None:
        req.session["user"] = req.data["user"]
        req.session["count"] = 0

    @app.route("hit")
    async def hit(req: Request) -> Any:
        req.session["count"] += 1
        return [req.session["user"], req.session["count"]]

    async with (
        TestClient(app, auth={"user": "ann"}) as ann,
        TestClient(app, auth={"user": "bo"}) as bo,
    ):
        assert await ann.call("hit") == ["ann", 1]
        assert await ann.call("hit") == ["ann", 2]
        assert await bo.call("hit") == ["bo", 1]


async def test_on_connect_sees_auth_and_can_join_and_emit() -> None:
    app = App()

    @app.on_connect
    async def hello(req: Request) -> None:
        assert req.event == "connect"
        await req.join(f"user:{req.data['user']}")
        await req.emit("welcome", sorted(req.rooms))

    async with TestClient(app, auth={"user": "ann"}) as ann:
        msg = await ann.receive()
        assert (msg.event, msg.data) == ("welcome", ["user:ann"])
        assert await app.room("user:ann").members() == {ann.sid}


async def test_without_auth_on_connect_gets_none() -> None:
    app = App()
    seen: list[Any] = ["unset"]

    @app.on_connect
    async def hello(req: Request) -> None:
        seen[0] = req.data

    async with TestClient(app):
        pass
    assert seen == [None]


async def test_a_failing_on_connect_hook_refuses_generically(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.on_connect
    async def broken(req: Request) -> None:
        await req.join("lobby")
        raise RuntimeError("database down")

    from roomcast import ConnectionRejected

    with (
        caplog.at_level(logging.ERROR, logger="roomcast"),
        pytest.raises(ConnectionRejected) as info,
    ):
        async with TestClient(app):
            pass
    assert "database" not in info.value.reason
    assert "on_connect" in caplog.text
    assert app.connections == frozenset()
    assert await app.room("lobby").count() == 0


async def test_reject_undoes_joins_made_in_the_hook() -> None:
    app = App()

    @app.on_connect
    async def gate(req: Request) -> None:
        await req.join("lobby")
        raise Reject("full")

    from roomcast import ConnectionRejected

    with pytest.raises(ConnectionRejected, match="full"):
        async with TestClient(app):
            pass
    assert await app.room("lobby").count() == 0


async def test_on_disconnect_sees_the_rooms_then_they_are_left() -> None:
    app = App()
    seen: list[Any] = []

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    @app.on_disconnect
    async def bye(req: Request) -> None:
        seen.append((req.event, sorted(req.rooms)))
        for room in req.rooms:
            await req.room(room).broadcast("left", req.sid)

    async with TestClient(app) as alice:
        async with TestClient(app) as bob:
            await bob.call("join", "chat")
            await alice.call("join", "chat")
            bob_sid = bob.sid
        msg = await alice.receive()
        assert (msg.event, msg.data) == ("left", bob_sid)
    assert seen[0] == ("disconnect", ["chat"])
    assert await app.room("chat").count() == 0


async def test_a_failing_on_disconnect_hook_still_cleans_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    @app.on_disconnect
    async def broken(req: Request) -> None:
        raise RuntimeError("oops")

    with caplog.at_level(logging.ERROR, logger="roomcast"):
        async with TestClient(app) as alice:
            await alice.call("join", "chat")
    assert await app.room("chat").count() == 0
    assert "on_disconnect" in caplog.text


async def test_a_client_that_disconnects_mid_handler_leaves_no_trace() -> None:
    app = App()
    started = anyio.Event()
    release = anyio.Event()
    finished = anyio.Event()

    @app.route("slow_join")
    async def slow_join(req: Request) -> None:
        started.set()
        with anyio.CancelScope(shield=True):  # outlives its connection
            await release.wait()
            await req.join("late")  # the connection is gone by now
            await req.emit("never")
            await req.broadcast("still_fine", req.sid)
        await anyio.lowlevel.checkpoint()  # the handler is cancelled here, once unshielded
        finished.set()

    async with TestClient(app) as alice, TestClient(app) as bob:
        await alice.emit("slow_join")
        await started.wait()
        await alice.disconnect()
        await alice.disconnect()  # idempotent
        release.set()
        assert (await bob.receive()).event == "still_fine"
        assert await app.room("late").count() == 0
        assert await app.rooms_of(alice.sid) == frozenset()
        assert app.connections == {bob.sid}
        with pytest.raises(ConnectionClosed):
            await alice.emit("slow_join")
    assert not finished.is_set()


async def test_server_side_disconnect() -> None:
    app = App()

    @app.route("kick_me")
    async def kick_me(req: Request) -> None:
        await req.emit("bye")
        await app.disconnect(req.sid)

    async with TestClient(app) as alice:
        await alice.emit("kick_me")
        assert (await alice.receive()).event == "bye"
        with pytest.raises(ConnectionClosed):
            await alice.receive(timeout=1)
        assert not alice.connected
        assert app.connections == frozenset()


async def test_emit_to_a_gone_connection_is_a_no_op() -> None:
    app = App()
    await app.emit("nobody", "event", 1)
    async with TestClient(app) as alice:
        await app.emit("nobody", "event", 1)
        with pytest.raises(TimeoutError):
            await alice.receive(timeout=0.1)


async def test_app_as_context_manager_opens_and_closes_the_backend() -> None:
    from roomcast.backends import MemoryBackend

    closed: list[bool] = []

    class Tracking(MemoryBackend):
        @asynccontextmanager
        async def run(self) -> AsyncIterator[None]:
            yield
            closed.append(True)

    async with App(backend=Tracking()) as app, TestClient(app) as alice:
        assert app.connections == {alice.sid}
    assert closed == [True]


def test_repr() -> None:
    app = App()
    app.route("a", lambda req: None)
    assert repr(app) == "<App routes=1 connections=0>"
    assert repr(app.room("b", "a")) == "<Room 'a', 'b'>"
