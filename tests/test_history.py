"""Room history on one process: the rules, and what `MemoryHistory` keeps and forgets.
(Every backend's history is held to `BackendConformance`.)"""

from __future__ import annotations

import time

import anyio
import pytest

from roomcast import App, Entry, Request
from roomcast._history import HistoryRule, HistoryRules, MemoryHistory
from roomcast.testing import TestClient


def test_a_rule_needs_a_size_and_a_ttl() -> None:
    for size, ttl in ((0, 1.0), (1, 0.0), (1, -1.0), (1, float("nan"))):
        with pytest.raises(ValueError, match=r"size|ttl"):
            HistoryRule("*", size, ttl)


def test_the_first_rule_that_matches_a_room_keeps_it() -> None:
    rules = HistoryRules()
    assert rules.rule_of("chat:1") is None
    rules.add(HistoryRule("chat:vip*", 5, 10.0))
    rules.add(HistoryRule("chat:*", 100, 300.0))
    assert rules.rule_of("chat:vip1") == HistoryRule("chat:vip*", 5, 10.0)
    assert rules.rule_of("chat:1") == HistoryRule("chat:*", 100, 300.0)
    assert rules.rule_of("other") is None


def test_offsets_increase_even_for_a_room_forgotten_and_kept_again() -> None:
    history = MemoryHistory()
    brief = HistoryRule("*", 2, 0.05)
    first = history.append("r", brief, "e", 1)
    time.sleep(0.1)
    assert history.read("r", None, None) == []
    second = history.append("r", brief, "e", 2)
    assert second > first
    assert history.read("r", first, None) == [Entry(second, "e", 2)]


def test_rooms_nobody_broadcast_to_within_their_ttl_are_forgotten() -> None:
    history = MemoryHistory()
    brief = HistoryRule("*", 10, 0.05)
    for n in range(1000):
        history.append(f"room{n}", brief, "e", n)
    assert len(history) == 1000
    time.sleep(0.1)
    history.append("fresh", brief, "e", 0)
    assert len(history) == 1


def test_what_is_kept_is_a_copy_as_the_wire_carries_it() -> None:
    history = MemoryHistory()
    data = {"list": [1], "tuple": (1, 2)}
    history.append("r", HistoryRule("*", 5, 60.0), "e", data)
    data["list"].append(2)
    assert history.read("r", None, None)[0].data == {"list": [1], "tuple": [1, 2]}


async def test_a_handler_reads_the_history_of_the_room_it_joins() -> None:
    app = App()
    app.keep_history("chat:*", size=50)

    @app.route("enter")
    async def enter(req: Request) -> list[list[object]]:
        await req.join(req.data)
        return [[e.event, e.data] for e in await app.room(req.data).history(limit=2)]

    @app.route("say")
    async def say(req: Request) -> None:
        await req.room("chat:1").broadcast("said", req.data)

    async with TestClient(app) as ann, TestClient(app) as bob:
        await ann.call("enter", "chat:1")
        for text in ("one", "two", "three"):
            await ann.call("say", text)
        assert await bob.call("enter", "chat:1") == [["said", "two"], ["said", "three"]]


async def test_history_on_trio_and_asyncio_alike() -> None:
    app = App()
    app.keep_history("*", size=2, ttl=60)
    for n in range(3):
        await app.room("r").broadcast("n", n)
        await anyio.lowlevel.checkpoint()
    assert [entry.data for entry in await app.room("r").history()] == [1, 2]
    with pytest.raises(ValueError, match="limit"):
        await app.room("r").history(limit=-1)
    with pytest.raises(TypeError, match="offset"):
        await app.room("r").history(after=3)  # type: ignore[arg-type]
