"""Who a broadcast reaches once the core has resolved a room's receivers and kept them.

A recording transport shows exactly which peers each `send` was given, so these tests see
what the app would hand a wire, including to a connection that is closing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from roomcast import App, Request, Transport


class Recorder(Transport):
    """Remembers, per broadcast, the peers it was asked to reach."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[Any, list[Any]]] = []

    def encode(self, event: str, data: Any, *, offset: str | None = None) -> Any:
        return (self.name, event, data)

    async def send(self, peers: Iterable[Any], encoded: Any) -> None:
        self.sent.append((encoded, list(peers)))

    async def close(self, sid: str) -> None:
        pass

    def take(self) -> list[set[Any]]:
        """The peers of each send since the last call, as sets."""
        sent, self.sent = self.sent, []
        return [set(peers) for _, peers in sent]


def make_app() -> App:
    app = App()

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    @app.route("leave")
    async def leave(req: Request) -> None:
        await req.leave(req.data)

    @app.route("others")
    async def others(req: Request) -> None:
        await req.room(req.data).broadcast("said", req.sid)

    return app


async def connect(app: App, transport: Transport, *sids: str, room: str = "r") -> None:
    for sid in sids:
        await app.hub.opened(sid, None, transport, peer=f"peer-{sid}")
        await app.hub.received(sid, "join", room, None)


def cached(app: App, room: str) -> bool:
    members = app.hub.index._rooms.get(room)
    return members is not None and members._groups is not None


async def test_membership_changes_reach_the_next_broadcast() -> None:
    app, wire = make_app(), Recorder("w")
    await connect(app, wire, "a", "b")
    await app.room("r").broadcast("e")
    assert wire.take() == [{"peer-a", "peer-b"}]
    assert cached(app, "r")

    await connect(app, wire, "c")
    assert not cached(app, "r")
    await app.room("r").broadcast("e")
    await app.room("r").broadcast("e")
    assert wire.take() == [{"peer-a", "peer-b", "peer-c"}] * 2

    await app.hub.received("b", "leave", "r", None)
    await app.room("r").broadcast("e")
    assert wire.take() == [{"peer-a", "peer-c"}]

    await app.hub.closed("a")
    await app.room("r").broadcast("e")
    assert wire.take() == [{"peer-c"}]

    await app.hub.closed("c")
    await app.room("r").broadcast("e")
    assert wire.take() == []


async def test_the_sender_is_left_out_of_a_kept_fanout() -> None:
    app, wire = make_app(), Recorder("w")
    await connect(app, wire, "a", "b", "c")
    await app.room("r").broadcast("e")
    wire.take()
    for sender in "abc":
        await app.hub.received(sender, "others", "r", None)
    assert wire.take() == [{"peer-b", "peer-c"}, {"peer-a", "peer-c"}, {"peer-a", "peer-b"}]
    # A sender outside the room leaves everyone in.
    await connect(app, wire, "d", room="elsewhere")
    await app.hub.received("d", "others", "r", None)
    assert wire.take() == [{"peer-a", "peer-b", "peer-c"}]
    # The kept receivers themselves are untouched by leaving someone out.
    await app.room("r").broadcast("e")
    assert wire.take() == [{"peer-a", "peer-b", "peer-c"}]


async def test_a_closing_connection_gets_nothing_while_its_hooks_run() -> None:
    app, wire = make_app(), Recorder("w")
    seen_in_hook: list[frozenset[str]] = []

    @app.on_disconnect
    async def goodbye(req: Request) -> None:
        seen_in_hook.append(req.rooms)
        await app.room("r").broadcast("gone", req.sid)

    await connect(app, wire, "a", "b", "c")
    await app.room("r").broadcast("e")
    assert cached(app, "r")
    wire.take()

    await app.hub.closed("a")
    assert seen_in_hook == [frozenset({"r"})]  # still a member while its hooks run...
    assert wire.take() == [{"peer-b", "peer-c"}]  # ...but no longer reached
    await app.room("r").broadcast("e")
    assert wire.take() == [{"peer-b", "peer-c"}]
    assert app.connections == {"b", "c"}


async def test_each_transport_gets_only_its_own_peers() -> None:
    app, left, right = make_app(), Recorder("left"), Recorder("right")
    await connect(app, left, "a", "b")
    await connect(app, right, "c", "d")
    for _ in range(2):
        await app.room("r").broadcast("e")
    assert [(encoded, set(peers)) for encoded, peers in left.sent] == [
        (("left", "e", None), {"peer-a", "peer-b"})
    ] * 2
    assert right.take() == [{"peer-c", "peer-d"}] * 2
    left.take()

    await app.hub.received("c", "others", "r", None)
    assert left.take() == [{"peer-a", "peer-b"}]
    assert right.take() == [{"peer-d"}]

    # A transport with no receiver left in the room is not called at all.
    await app.hub.received("d", "leave", "r", None)
    await app.hub.received("c", "others", "r", None)
    assert left.take() == [{"peer-a", "peer-b"}]
    assert right.take() == []


async def test_a_transport_that_names_no_peer_is_sent_sids() -> None:
    app, wire = make_app(), Recorder("w")
    await app.hub.opened("a", None, wire)
    await app.hub.received("a", "join", "r", None)
    await app.room("r").broadcast("e")
    await app.emit("a", "e")
    await app.broadcast("e")
    assert wire.take() == [{"a"}] * 3


@pytest.mark.parametrize("rooms", [("r",), ("r", "s")])
async def test_one_copy_per_connection_in_several_rooms(rooms: tuple[str, ...]) -> None:
    app, wire = make_app(), Recorder("w")
    await connect(app, wire, "a", "b")
    await app.hub.received("a", "join", "s", None)
    await app.room(*rooms).broadcast("e")
    [peers] = [peers for _, peers in wire.sent]
    assert sorted(peers) == ["peer-a", "peer-b"]


async def test_broadcasts_to_everyone_keep_up_with_connections() -> None:
    app, wire = make_app(), Recorder("w")

    @app.route("all_but_me")
    async def all_but_me(req: Request) -> None:
        await req.broadcast("said", req.sid)

    @app.on_disconnect
    async def goodbye(req: Request) -> None:
        await app.broadcast("gone", req.sid)

    await connect(app, wire, "a", "b")
    await app.broadcast("e")
    assert wire.take() == [{"peer-a", "peer-b"}]

    await connect(app, wire, "c")  # after everyone's receivers were kept
    await app.broadcast("e")
    await app.hub.received("b", "all_but_me", None, None)
    assert wire.take() == [{"peer-a", "peer-b", "peer-c"}, {"peer-a", "peer-c"}]

    await app.hub.closed("a")  # its hook broadcasts while it is closing
    assert wire.take() == [{"peer-b", "peer-c"}]
    await app.broadcast("e")
    assert wire.take() == [{"peer-b", "peer-c"}]
    assert app.connections == {"b", "c"}
