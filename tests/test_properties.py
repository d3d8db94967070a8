"""Random sequences of what clients do, hostile input included; invariants after every step.

After each step: the two membership indexes mirror each other, no room is empty, only open
connections are members, every event got exactly one outcome (its "ok" or one error), a
broadcast reached exactly the room's members at that moment (but the sender, for
`req.room`), once each, and no exception escaped (the only errors logged are the deliberate
crashes). Broadcasts come between joins, leaves and disconnections in any order, so the
receivers a room keeps resolved between broadcasts are checked against every change.
"""

from __future__ import annotations

import logging
import random
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomcast import App, InvalidPayload, Limits, Request
from roomcast.testing import TestClient

ERROR_CODES = {
    "unknown_event",
    "invalid_payload",
    "invalid_room",
    "too_large",
    "too_many_rooms",
    "internal",
    "forbidden",
}
ROUTES = ["join", "leave", "echo", "bcast", "bcast_others", "crash", "reject", "secret"]
BROADCASTS = {"bcast": "b", "bcast_others": "o", "all": "a", "all_others": "e"}


def nest(depth: int) -> Any:
    value: Any = "core"
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.sampled_from(["", "x" * 3000, "\u202e\u0000\ud800?", "😀" * 50, "<script>"])
)
payloads = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
) | st.integers(0, 40).map(nest)
# Mostly two rooms, so that joins, leaves and broadcasts often meet in the same one.
room_names = st.one_of(
    st.sampled_from(["a", "b"]),
    st.sampled_from(["a", "b"]),
    st.sampled_from(["c", "d", "e", "f", "secret:1"]),
    payloads,
)
events = st.sampled_from(ROUTES) | st.text(max_size=140)
clients = st.integers(0, 3)

steps = st.one_of(
    st.tuples(st.just("connect"), clients),
    st.tuples(st.just("disconnect"), clients),
    st.tuples(st.just("emit"), clients, st.just("join"), room_names, st.booleans()),
    st.tuples(st.just("emit"), clients, st.just("leave"), room_names, st.booleans()),
    st.tuples(
        st.just("emit"), clients, st.sampled_from(sorted(BROADCASTS)), room_names, st.booleans()
    ),
    st.tuples(st.just("emit"), clients, events, payloads, st.booleans()),
)


def make_app() -> App:
    app = App(limits=Limits(max_payload=2_000, max_depth=8, max_rooms=4, rate=None))

    async def done(req: Request) -> None:
        if req.wants_response:
            await req.respond("ok")
        else:
            await req.emit("ok", req.event)

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)
        await done(req)

    @app.route("leave")
    async def leave(req: Request) -> None:
        await req.leave(req.data)
        await done(req)

    @app.route("echo")
    async def echo(req: Request) -> None:
        await done(req)

    @app.route("bcast")
    async def bcast(req: Request) -> None:
        await app.room(req.data).broadcast("b", "hello")
        await done(req)

    @app.route("bcast_others")
    async def bcast_others(req: Request) -> None:
        await req.room(req.data).broadcast("o", "hello")
        await done(req)

    @app.route("all")
    async def everyone(req: Request) -> None:
        await app.broadcast("a", "hello")
        await done(req)

    @app.route("all_others")
    async def everyone_else(req: Request) -> None:
        await req.broadcast("e", "hello")
        await done(req)

    @app.route("crash")
    async def crash(req: Request) -> None:
        raise RuntimeError("deliberate")

    @app.route("reject")
    async def reject(req: Request) -> None:
        raise InvalidPayload("never good enough")

    @app.guard("secret:*")
    async def nobody(req: Request, room: str) -> bool:
        return False

    return app


def check_indexes(app: App, open_sids: set[str]) -> None:
    index = app.hub.index
    forward = {(room, sid) for room, members in index._rooms.items() for sid in members.sids}
    backward = {(room, c.sid) for c in index.connections.values() for room in c.rooms}
    assert forward == backward
    assert all(index._rooms.values()), "an empty room remained"
    assert {sid for _, sid in forward} <= open_sids
    assert app.connections == open_sids


async def run(sequence: list[tuple[Any, ...]]) -> None:
    app = make_app()
    async with AsyncExitStack() as stack:
        # Two clients to start with, so that most steps have someone to act.
        slots: dict[int, TestClient] = {
            slot: await stack.enter_async_context(TestClient(app)) for slot in (0, 1)
        }
        for step in sequence:
            kind, slot = step[0], step[1]
            client = slots.get(slot)
            if kind == "connect" and client is None:
                slots[slot] = await stack.enter_async_context(TestClient(app))
            elif kind == "disconnect" and client is not None:
                await client.disconnect()
                del slots[slot]
            elif kind == "emit" and client is not None:
                _, _, event, data, with_ack = step
                expected = {name: set[str]() for name in BROADCASTS.values()}
                if event in ("all", "all_others"):
                    members = {c.sid for c in slots.values()}
                elif event in BROADCASTS and isinstance(data, str):
                    members = set(app.hub.index.members(data))
                if event in BROADCASTS and (isinstance(data, str) or event.startswith("all")):
                    if event.endswith("_others"):
                        members.discard(client.sid)
                    expected[BROADCASTS[event]] = members
                if with_ack:
                    answer = await client.call(event, data, timeout=5)
                    assert answer == "ok" or answer["error"]["code"] in ERROR_CODES, answer
                    succeeded = answer == "ok"
                    received = client.drain()
                    outcomes = [m for m in received if m.event in ("ok", "error")]
                    assert outcomes == [], outcomes  # the ack was the one outcome
                else:
                    await client.emit(event, data)
                    await client.call("echo", timeout=5)  # handled in order: now it is done
                    received = client.drain()
                    outcomes = [m for m in received if m.event in ("ok", "error")]
                    assert len(outcomes) == 1, outcomes
                    succeeded = outcomes[0].event == "ok"
                    if outcomes[0].event == "error":
                        assert outcomes[0].data["code"] in ERROR_CODES
                        assert outcomes[0].data["event"] == event
                inboxes = {c.sid: c.drain() for c in slots.values() if c is not client}
                inboxes[client.sid] = received
                for name, sids in expected.items():
                    sids = sids if succeeded else set()  # refused before its handler ran
                    counts = {
                        sid: [m.event for m in got].count(name) for sid, got in inboxes.items()
                    }
                    assert counts == {sid: int(sid in sids) for sid in inboxes}, (name, counts)
            for other in slots.values():
                other.drain()
            check_indexes(app, {c.sid for c in slots.values()})
    check_indexes(app, set())
    assert len(app.hub.index) == 0


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(steps, min_size=10, max_size=40))
def test_random_sequences_keep_the_invariants(sequence: list[tuple[Any, ...]]) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("roomcast")
    logger.addHandler(handler)
    try:
        anyio.run(run, sequence)
    finally:
        logger.removeHandler(handler)
    unexpected = [r for r in records if "'crash'" not in r.getMessage()]
    assert unexpected == [], [r.getMessage() for r in unexpected]


ROOM_ACTIONS = ["join", "join", "leave", "bcast", "bcast", "bcast_others", "all", "all_others"]


def membership_sequence(seed: int, length: int = 300) -> list[tuple[Any, ...]]:
    """Random steps, three in four acting in one of two rooms, the rest connecting or
    disconnecting one of four clients (uniform, so that every kind of step meets every other
    often; a failing seed replays exactly)."""
    rng = random.Random(seed)
    steps: list[tuple[Any, ...]] = []
    for _ in range(length):
        slot = rng.randrange(4)
        if rng.random() < 0.75:
            steps.append((rng.choice(ROOM_ACTIONS), slot, rng.choice("ab")))
        else:
            steps.append((rng.choice(["connect", "disconnect"]), slot))
    return steps


async def run_membership(sequence: list[tuple[Any, ...]]) -> None:
    """Drive joins, leaves, disconnections and broadcasts; check every client's inbox
    against a plain model of who is in which room."""
    app = make_app()
    async with AsyncExitStack() as stack:
        slots = {slot: await stack.enter_async_context(TestClient(app)) for slot in (0, 1, 2)}
        model: dict[int, set[str]] = {slot: set() for slot in slots}
        for step, (kind, slot, *rest) in enumerate(sequence):
            client = slots.get(slot)
            if kind == "connect":
                if client is None:
                    slots[slot] = await stack.enter_async_context(TestClient(app))
                    model[slot] = set()
                continue
            if client is None:
                continue
            if kind == "disconnect":
                await client.disconnect()
                del slots[slot], model[slot]
                continue
            (room,) = rest
            assert await client.call(kind, room) == "ok"
            if kind == "join":
                model[slot].add(room)
            elif kind == "leave":
                model[slot].discard(room)
            for other, other_client in slots.items():
                got = [m.event for m in other_client.drain()]
                member = room in model[other] or kind in ("all", "all_others")
                reached = member and (kind in ("bcast", "all") or other != slot)
                want = [BROADCASTS[kind]] if kind in BROADCASTS and reached else []
                assert got == want, (step, kind, room, other, slot)


@pytest.mark.parametrize("seed", range(20))
def test_broadcasts_reach_exactly_the_members(seed: int) -> None:
    anyio.run(run_membership, membership_sequence(seed))


@pytest.mark.parametrize("depth", [0, 8, 9, 500])
def test_deep_nesting_is_refused_not_crashed(depth: int) -> None:
    async def main() -> Any:
        async with TestClient(make_app()) as client:
            return await client.call("echo", nest(depth))

    answer = anyio.run(main)
    assert answer == "ok" if depth <= 8 else answer["error"]["code"] == "too_large"
