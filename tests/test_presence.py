"""Presence on one process: what a tracker and the members see, and what is refused."""

from __future__ import annotations

import math
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from roomcast import App, InvalidPayload, Limits, Request
from roomcast._presence import Track, check_key, check_meta, grouped
from roomcast.testing import TestClient


def make_app(**options: Any) -> App:
    app = App(**options)

    @app.route("track")
    async def track(req: Request) -> None:
        await req.track(req.data["room"], req.data["meta"], key=req.data.get("key"))

    @app.route("untrack")
    async def untrack(req: Request) -> None:
        await req.untrack(req.data)

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    @app.guard("private:*")
    def private(req: Request, room: str) -> bool:
        return False

    return app


def apply(state: dict[str, list[dict[str, Any]]], diff: dict[str, Any]) -> None:
    """Apply a diff as a client does: joins add new refs, leaves remove refs."""
    for key, metas in diff["joins"].items():
        have = {meta["ref"] for meta in state.get(key, [])}
        state.setdefault(key, []).extend(m for m in metas if m["ref"] not in have)
    for key, metas in diff["leaves"].items():
        refs = {meta["ref"] for meta in metas}
        state[key] = [meta for meta in state.get(key, []) if meta["ref"] not in refs]
        if not state[key]:
            del state[key]


async def test_a_tracker_gets_the_state_then_the_diff_of_its_own_join() -> None:
    app = make_app()
    async with TestClient(app) as ann:
        await ann.call("track", {"room": "lobby", "meta": {"name": "Ann"}, "key": "u1"})
        state = await ann.receive()
        assert state.event == "presence_state"
        (meta,) = state.data["presences"]["u1"]
        assert meta["name"] == "Ann"
        assert isinstance(meta["ref"], str)
        diff = await ann.receive()
        assert diff.event == "presence_diff"
        assert diff.data == {"room": "lobby", "joins": {"u1": [meta]}, "leaves": {}}
        # Tracking again is an update: no new state, a leave and a join with a new ref.
        await ann.call("track", {"room": "lobby", "meta": {"name": "Ann!"}, "key": "u1"})
        update = (await ann.receive()).data
        assert update["leaves"] == {"u1": [meta]}
        (new,) = update["joins"]["u1"]
        assert new["name"] == "Ann!"
        assert new["ref"] != meta["ref"]
        await ann.expect_nothing()
        assert await app.room("lobby").presence() == {"u1": [new]}


async def test_the_key_defaults_to_the_sid_and_metas_are_oldest_first() -> None:
    app = make_app()
    async with TestClient(app) as one, TestClient(app) as two, TestClient(app) as three:
        await one.call("track", {"room": "r", "meta": {"n": 1}})
        await two.call("track", {"room": "r", "meta": {"n": 2}, "key": "shared"})
        await three.call("track", {"room": "r", "meta": {"n": 3}, "key": "shared"})
        presences = await app.room("r").presence()
        assert list(presences) == [one.sid, "shared"]
        assert [meta["n"] for meta in presences["shared"]] == [2, 3]


async def test_a_member_that_never_tracked_gets_diffs_but_no_state() -> None:
    app = make_app()
    async with TestClient(app) as watcher, TestClient(app) as ann:
        await watcher.call("join", "r")
        await ann.call("track", {"room": "r", "meta": {"name": "Ann"}})
        diff = await watcher.receive()
        assert diff.event == "presence_diff"
        assert list(diff.data["joins"]) == [ann.sid]
        await ann.call("untrack", "r")
        assert (await watcher.receive()).data["leaves"] == diff.data["joins"]
        await ann.call("untrack", "r")  # not present: nothing happens
        await watcher.expect_nothing()
        assert await app.room("r").members() == {watcher.sid, ann.sid}


async def test_a_join_storm_is_coalesced_and_every_member_ends_with_the_same_state() -> None:
    app = make_app(presence_window=0.05)
    async with TestClient(app) as watcher, AsyncExitStack() as stack:
        await watcher.call("join", "r")
        clients = [await stack.enter_async_context(TestClient(app)) for _ in range(40)]
        async with anyio.create_task_group() as tg:
            for n, client in enumerate(clients):
                tg.start_soon(client.call, "track", {"room": "r", "meta": {"n": n}})
        state: dict[str, list[dict[str, Any]]] = {}
        diffs = 0
        while len(state) < 40:
            apply(state, (await watcher.receive("presence_diff")).data)
            diffs += 1
        assert diffs < 10, "the diffs were not coalesced"
        assert state == await app.room("r").presence()
        for client in clients:
            mine = (await client.receive("presence_state")).data["presences"]
            while (pending := client.drain()) or len(mine) < 40:
                for message in pending:
                    if message.event == "presence_diff":
                        apply(mine, message.data)
                if len(mine) < 40:
                    apply(mine, (await client.receive("presence_diff")).data)
            assert mine == state
        await stack.aclose()
        while state:
            apply(state, (await watcher.receive("presence_diff")).data)
        assert await app.room("r").presence() == {}


async def test_joined_and_left_within_the_window_is_never_announced() -> None:
    app = make_app(presence_window=0.2)
    async with TestClient(app) as watcher, TestClient(app) as ann, TestClient(app) as bob:
        await watcher.call("join", "r")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ann.call, "track", {"room": "r", "meta": {"name": "Ann"}})
            await anyio.wait_all_tasks_blocked()  # ann's track opened the window
            await bob.call("track", {"room": "r", "meta": {"name": "Bob"}})
            await bob.call("untrack", "r")
        diff = (await watcher.receive("presence_diff")).data
        assert list(diff["joins"]) == [ann.sid]
        assert diff["leaves"] == {}


@pytest.mark.parametrize(
    ("meta", "key"),
    [
        (["not", "an", "object"], None),
        ("text", None),
        (None, None),
        ({"ref": "mine"}, None),
        ({"name": "Ann"}, 42),
        ({"name": "Ann"}, ""),
        ({"name": "Ann"}, "k" * 257),
    ],
)
async def test_a_bad_meta_or_key_is_an_invalid_payload_and_tracks_nothing(
    meta: Any, key: Any
) -> None:
    app = make_app(limits=Limits(max_payload=1000, max_depth=8))
    async with TestClient(app) as client:
        answer = await client.call("track", {"room": "r", "meta": meta, "key": key})
        assert answer["error"]["code"] == "invalid_payload"
        assert await app.room("r").presence() == {}
        assert await app.room("r").members() == frozenset()


async def test_a_meta_over_the_payload_limits_is_an_invalid_payload() -> None:
    app = make_app(limits=Limits(max_payload=1000, max_depth=8))

    @app.route("track_built")
    async def track_built(req: Request) -> None:
        # Built on the server, from a small event: the meta alone is over the limits.
        meta = {"big": "x" * 2000} if req.data == "big" else {"deep": [[[[[[[[[[1]]]]]]]]]]}
        await req.track("r", meta)

    async with TestClient(app) as client:
        for what in ("big", "deep"):
            answer = await client.call("track_built", what)
            assert answer["error"]["code"] == "invalid_payload", what
        assert await app.room("r").presence() == {}


def test_a_meta_must_be_json_that_a_browser_can_parse() -> None:
    limits = Limits()
    for meta in ({"x": {1, 2}}, {"x": math.nan}, {1: "int key"}, {"x": b"bytes"}):
        with pytest.raises(InvalidPayload):
            check_meta(meta, limits)
    with pytest.raises(InvalidPayload):
        check_key("\ud800")
    given = {"name": "Ann"}
    track = Track("k", "sid", {**given, "ref": "r"}, 1)
    assert Track.load(track.dump()) == track
    assert given == {"name": "Ann"}


async def test_tracking_a_room_the_guards_refuse_is_forbidden() -> None:
    app = make_app()
    async with TestClient(app) as client:
        answer = await client.call("track", {"room": "private:1", "meta": {}})
        assert answer["error"]["code"] == "forbidden"
        assert await app.room("private:1").presence() == {}
        await client.expect_nothing()


async def test_presence_is_for_one_room() -> None:
    app = make_app()
    with pytest.raises(TypeError, match="one room"):
        await app.room("a", "b").presence()


def test_grouped_orders_by_time_then_ref() -> None:
    tracks = [
        Track("b", "s2", {"ref": "2"}, 20),
        Track("a", "s1", {"ref": "1"}, 10),
        Track("b", "s3", {"ref": "0"}, 20),
    ]
    assert grouped(tracks) == {"a": [{"ref": "1"}], "b": [{"ref": "0"}, {"ref": "2"}]}
