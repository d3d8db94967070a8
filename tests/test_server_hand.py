"""The server's hand on a connection of this process: app.join, leave, disconnect and call.
(Across processes, `BackendConformance` holds every backend to the same.)"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from roomcast import App, ConnectionClosed, Limits, Request, TooManyRooms
from roomcast.testing import TestClient


async def test_the_server_joins_past_the_guards_but_not_past_max_rooms() -> None:
    app = App(limits=Limits(max_rooms=2))

    @app.guard("ticket:*")
    async def nobody(req: Request, room: str) -> bool:
        return False

    async with TestClient(app) as agent:
        assert await app.join(agent.sid, "ticket:1") is True
        assert await app.join(agent.sid, "ticket:1") is True  # already there
        assert await app.join(agent.sid, "ticket:2") is True
        with pytest.raises(TooManyRooms):
            await app.join(agent.sid, "ticket:3")
        assert await app.rooms_of(agent.sid) == {"ticket:1", "ticket:2"}
        assert await app.leave(agent.sid, "ticket:1") is True
        assert await app.leave(agent.sid, "ticket:1") is True  # not there: still exists
        assert await app.rooms_of(agent.sid) == {"ticket:2"}


async def test_leaving_from_the_server_untracks() -> None:
    app = App()

    @app.route("track")
    async def track(req: Request) -> None:
        await req.track("desk", {"name": "agent"})

    async with TestClient(app) as agent, TestClient(app) as watcher:
        await app.join(watcher.sid, "desk")
        await agent.call("track")
        assert list((await watcher.receive("presence_diff")).data["joins"]) == [agent.sid]
        await app.leave(agent.sid, "desk")
        assert list((await watcher.receive("presence_diff")).data["leaves"]) == [agent.sid]
        assert await app.room("desk").presence() == {}


async def test_a_handler_may_call_its_own_client() -> None:
    app = App()

    @app.route("confirm")
    async def confirm(req: Request) -> Any:
        answer = await app.call(req.sid, "sure?", req.data)
        return {"client said": answer}

    async with TestClient(app) as client:
        client.on("sure?", lambda data: f"yes to {data}")  # a plain def answers too
        assert await client.call("confirm", "delete") == {"client said": "yes to delete"}


async def test_a_call_goes_through_the_wire_format_both_ways() -> None:
    app = App()
    async with TestClient(app) as client:
        seen: list[Any] = []

        @client.on("echo")
        async def echo(data: Any) -> Any:
            seen.append(data)
            return {"t": (1, 2), "b": b"\x00\xff"}

        answer = await app.call(client.sid, "echo", {"x": (1, 2)})
        assert seen == [{"x": [1, 2]}]
        assert answer == {"t": [1, 2], "b": b"\x00\xff"}


async def test_a_call_that_times_out_or_whose_connection_closes_leaves_nothing() -> None:
    app = App()
    async with TestClient(app) as client:
        conn = app.hub.index.connections[client.sid]
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await app.call(client.sid, "silence", timeout=0.05)
        assert not conn.calls
        assert [m.event for m in client.drain()] == ["silence"] * 3
    with pytest.raises(ConnectionClosed):
        await app.call(client.sid, "gone")


async def test_an_answer_after_the_timeout_is_dropped() -> None:
    app = App()
    async with TestClient(app) as client:
        release = anyio.Event()

        @client.on("slow")
        async def slow(data: Any) -> str:
            await release.wait()
            return "late"

        with pytest.raises(TimeoutError):
            await app.call(client.sid, "slow", timeout=0.05)
        release.set()
        client.on("fast", lambda data: "on time")
        assert await app.call(client.sid, "fast") == "on time"


async def test_the_server_disconnects_a_connection() -> None:
    app = App()
    closed: list[str] = []

    @app.on_disconnect
    async def gone(req: Request) -> None:
        closed.append(req.sid)

    async with TestClient(app) as client:
        await app.disconnect(client.sid)
        assert not client.connected
        assert closed == [client.sid]
        await app.disconnect(client.sid)  # gone already: nothing happens


async def test_call_needs_an_event_name() -> None:
    app = App()
    async with TestClient(app) as client:
        with pytest.raises(TypeError, match="event name"):
            await app.call(client.sid, 42)  # type: ignore[arg-type]
