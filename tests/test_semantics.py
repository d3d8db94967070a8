"""The SPEC's who-receives-what table and error rules, over both transports.

Every test here runs against the in-memory transport (`TestClient`, on asyncio and trio) and
against a real python-socketio server under uvicorn with real `socketio.AsyncClient`s.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from roomcast import App, ConnectionRejected, InvalidPayload, InvalidRoomName, Reject, Request

from .transports import Connect, anyio_backend, asgi_app, connect, setup  # noqa: F401


def make_app() -> App:
    app = App()

    @app.on_connect
    async def check_token(req: Request) -> None:
        if isinstance(req.data, dict) and req.data.get("token") == "bad":
            raise Reject("bad token")

    @app.route("join")
    async def join(req: Request) -> None:
        for room in req.data:
            await req.join(room)
        await req.respond(sorted(req.rooms))

    @app.route("leave")
    async def leave(req: Request) -> None:
        await req.leave(req.data)
        await req.respond(sorted(req.rooms))

    @app.route("emit")
    async def emit(req: Request) -> None:
        await req.emit("to_me", req.data)

    @app.route("broadcast")
    async def broadcast(req: Request) -> None:
        await req.broadcast("to_others", req.data)

    @app.route("room_others")
    async def room_others(req: Request) -> None:
        await req.room(*req.data["rooms"]).broadcast("in_room", req.data["msg"])

    @app.route("room_all")
    async def room_all(req: Request) -> None:
        await app.room(*req.data["rooms"]).broadcast("in_room", req.data["msg"])

    @app.route("everyone")
    async def everyone(req: Request) -> None:
        await app.broadcast("to_all", req.data)

    @app.route("direct")
    async def direct(req: Request) -> None:
        await app.emit(req.data["sid"], "direct", req.data["msg"])

    @app.route("echo")
    async def echo(req: Request) -> None:
        await req.respond(req.data)

    @app.route("move")
    async def move(req: Request) -> None:
        # Every argument as sent, back as several, to the sender and to the others.
        await req.emit("moved", *req.args) if req.args else await req.emit("moved")
        if req.args:
            await req.broadcast("moved", *req.args)
        await req.respond(*reversed(req.args))

    @app.route("members")
    async def members(req: Request) -> Any:
        return {
            "members": sorted(await app.room(req.data).members()),
            "count": await app.room(req.data).count(),
            "my_rooms": sorted(await app.rooms_of(req.sid)),
        }

    @app.route("reject")
    async def reject(req: Request) -> None:
        raise InvalidPayload("a number is needed")

    @app.route("crash")
    async def crash(req: Request) -> None:
        raise RuntimeError("secret detail")

    return app


@pytest.fixture
def app() -> App:
    return make_app()


async def nothing_for(client: Any) -> None:
    try:
        msg = await client.receive(timeout=0.2)
    except TimeoutError:
        return
    pytest.fail(f"unexpected {msg!r}")


async def test_emit_reaches_only_the_sender(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        await alice.emit("emit", {"n": 1})
        msg = await alice.receive()
        assert (msg.event, msg.data) == ("to_me", {"n": 1})
        await nothing_for(bob)


async def test_respond_acknowledges_the_sender(connect: Connect) -> None:
    async with connect() as alice:
        assert await alice.call("echo", {"x": [1, 2]}) == {"x": [1, 2]}
        await alice.emit("echo", "no ack asked")  # respond without an ack: no-op, no error
        await nothing_for(alice)


async def test_request_broadcast_reaches_everyone_but_the_sender(connect: Connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        await alice.emit("broadcast", "hi")
        for client in (bob, carol):
            msg = await client.receive()
            assert (msg.event, msg.data) == ("to_others", "hi")
        await nothing_for(alice)


async def test_request_room_broadcast_leaves_the_sender_out(connect: Connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        await alice.call("join", ["chat"])
        await bob.call("join", ["chat"])
        await alice.emit("room_others", {"rooms": ["chat"], "msg": "hello"})
        msg = await bob.receive()
        assert (msg.event, msg.data) == ("in_room", "hello")
        await nothing_for(alice)
        await nothing_for(carol)


async def test_app_room_broadcast_includes_a_member_sender(connect: Connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        await alice.call("join", ["chat"])
        await bob.call("join", ["chat"])
        await alice.emit("room_all", {"rooms": ["chat"], "msg": "hello"})
        for client in (alice, bob):
            msg = await client.receive()
            assert (msg.event, msg.data) == ("in_room", "hello")
        await nothing_for(carol)


async def test_a_non_member_can_broadcast_to_a_room(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        await bob.call("join", ["chat"])
        await alice.emit("room_all", {"rooms": ["chat"], "msg": "from outside"})
        assert (await bob.receive()).data == "from outside"
        await nothing_for(alice)


async def test_several_rooms_deliver_one_copy(connect: Connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        await bob.call("join", ["a", "b"])
        await carol.call("join", ["b"])
        await alice.emit("room_all", {"rooms": ["a", "b"], "msg": 1})
        for client in (bob, carol):
            assert (await client.receive()).data == 1
            await nothing_for(client)
        await bob.emit("room_others", {"rooms": ["a", "b"], "msg": 2})
        assert (await carol.receive()).data == 2
        await nothing_for(bob)


async def test_app_broadcast_reaches_every_connection(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        await alice.emit("everyone", "all")
        for client in (alice, bob):
            msg = await client.receive()
            assert (msg.event, msg.data) == ("to_all", "all")


async def test_app_emit_reaches_one_connection(connect: Connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        await alice.emit("direct", {"sid": bob.sid, "msg": "psst"})
        msg = await bob.receive()
        assert (msg.event, msg.data) == ("direct", "psst")
        await nothing_for(alice)
        await nothing_for(carol)


async def test_members_count_and_rooms_of(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        assert await alice.call("join", ["chat", "news"]) == ["chat", "news"]
        await bob.call("join", ["chat"])
        answer = await alice.call("members", "chat")
        assert answer == {
            "members": sorted([alice.sid, bob.sid]),
            "count": 2,
            "my_rooms": ["chat", "news"],
        }
        assert await alice.call("leave", "news") == ["chat"]
        assert (await bob.call("members", "news"))["count"] == 0


async def test_disconnect_leaves_every_room(connect: Connect, app: App) -> None:
    async with connect() as alice:
        async with connect() as bob:
            await bob.call("join", ["chat", "news"])
            bob_sid = bob.sid
            assert await app.rooms_of(bob_sid) == {"chat", "news"}
        # Over a real socket the server learns of the disconnect a moment later.
        for _ in range(100):
            if not await app.rooms_of(bob_sid):
                break
            await alice.call("echo", None)
        assert await app.rooms_of(bob_sid) == frozenset()
        assert (await alice.call("members", "chat"))["count"] == 0


async def test_on_connect_reject_refuses_with_the_reason(connect: Connect, app: App) -> None:
    refused = connect({"token": "bad"})
    with pytest.raises(ConnectionRejected, match="bad token"):
        await refused.__aenter__()
    assert app.connections == frozenset()
    async with connect({"token": "good"}) as alice:
        assert await alice.call("echo", 1) == 1


async def test_unknown_event(connect: Connect) -> None:
    async with connect() as alice:
        assert await alice.call("nope", 1) == {
            "error": {"code": "unknown_event", "message": "No route handles the event 'nope'."}
        }
        await alice.emit("nope", 1)
        msg = await alice.receive()
        assert msg.event == "error"
        assert msg.data["code"] == "unknown_event"
        assert msg.data["event"] == "nope"


async def test_invalid_payload(connect: Connect) -> None:
    async with connect() as alice:
        answer = await alice.call("reject", "x")
        assert answer == {"error": {"code": "invalid_payload", "message": "a number is needed"}}
        await alice.emit("reject", "x")
        msg = await alice.receive()
        assert msg.data == {
            "code": "invalid_payload",
            "message": "a number is needed",
            "event": "reject",
        }


@pytest.mark.parametrize("name", ["", 42, None, ["a"], "x" * 257])
async def test_invalid_room_names(connect: Connect, app: App, name: Any) -> None:
    async with connect() as alice:
        answer = await alice.call("join", ["ok", name])
        assert answer["error"]["code"] == "invalid_room"
        # The valid room joined before the bad one stays joined; nothing else changed.
        assert await app.rooms_of(alice.sid) == {"ok"}
        assert await alice.call("echo", "still open") == "still open"


async def test_handler_crash_is_internal_and_logged(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect() as alice, connect() as bob:
        with caplog.at_level(logging.ERROR, logger="roomcast"):
            answer = await alice.call("crash", None)
        assert answer == {"error": {"code": "internal", "message": "Internal server error."}}
        assert "secret" not in repr(answer)
        await alice.emit("crash", None)
        msg = await alice.receive()
        assert msg.data["code"] == "internal"
        assert "secret" not in repr(msg.data)
        # The server logged it, traceback included, and everyone carries on.
        records = [r for r in caplog.records if r.name == "roomcast"]
        assert records
        assert records[0].exc_info is not None
        assert "secret detail" in str(records[0].exc_info[1])
        assert await bob.call("echo", "fine") == "fine"
        assert await alice.call("echo", "fine") == "fine"


async def test_payloads_keep_their_shape(connect: Connect) -> None:
    payload = {"text": "héllo ✓", "n": 1.5, "list": [1, None, True], "nested": {"a": {"b": []}}}
    async with connect() as alice:
        assert await alice.call("echo", payload) == payload
        assert await alice.call("echo", "") == ""
        assert await alice.call("echo", 0) == 0


async def test_a_handler_still_running_is_cancelled_when_its_client_leaves(
    connect: Connect, app: App
) -> None:
    started, cancelled, gone = anyio.Event(), anyio.Event(), anyio.Event()

    @app.route("wait")
    async def wait(req: Request) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    @app.on_disconnect
    async def bye(req: Request) -> None:
        gone.set()

    with anyio.fail_after(10):
        async with connect() as alice:
            await alice.emit("wait")
            await started.wait()
        await cancelled.wait()
        await gone.wait()
    assert app.connections == frozenset()


async def test_text_that_is_not_unicode_is_refused_at_the_door(connect: Connect, app: App) -> None:
    async with connect() as alice:
        answer = await alice.call("echo", {"text": "a\udc00b"})
        assert answer["error"]["code"] == "invalid_payload"
        answer = await alice.call("join", ["ok", "\ud800"])  # the event is refused whole
        assert answer["error"]["code"] == "invalid_payload"
        assert await app.rooms_of(alice.sid) == frozenset()
        assert await alice.call("echo", "é 🎉") == "é 🎉"
    with pytest.raises(InvalidRoomName):  # and from the server's side, as a room name
        app.room("\ud800")


async def test_several_arguments_go_both_ways(connect: Connect) -> None:
    async with connect() as mover, connect() as watcher:
        assert await mover.call("move", 1, 2) == [2, 1]  # several values: a list
        moved = await mover.receive()
        assert (moved.event, moved.data, moved.args) == ("moved", [1, 2], (1, 2))
        seen = await watcher.receive()
        assert (seen.event, seen.args) == ("moved", (1, 2))
        # One argument is one, a list included; none is none.
        assert await mover.call("move", [1, 2]) == [1, 2]
        moved = await mover.receive()
        assert (moved.data, moved.args) == ([1, 2], ([1, 2],))
        await watcher.receive()
        assert await mover.call("move") is None
        moved = await mover.receive()
        assert (moved.data, moved.args) == (None, ())
