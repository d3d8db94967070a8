"""In-process fan-out: a roomcast room broadcast against a bare Python loop, in the same run.

    .venv/bin/python -m benchmarks.core [--sizes 10,1000,100000] [--deliveries 1000000]
        [--repeat 5] [--backend asyncio|trio] [--testclient-max 100000] [--json out.json]

For a room of N members, each member owns a callback (`deque.append` on its own inbox, the
callbacks made one after the other). Each way below delivers the same payload to every
member, `--deliveries // N` times per timed repetition (at least once); the best of
`--repeat` repetitions counts, and the ways are timed in turn within each repetition so that
noise hits them alike (gc off while timing, as `timeit` does):

- `bare loop`: `for callback in callbacks: callback(payload)` over a list of the N callbacks
  in the order they were made, the floor for delivering in Python;
- `bare loop over a set`: the same over a set of them. At 100,000 members a set's hash order
  visits memory out of order and costs several times the list's: the CPU's caches, not the
  loop, dominate there;
- `roomcast`: `await app.room("room").broadcast(event, data)` on an `App` whose connections
  belong to a minimal `Transport` (benchmarks-only): each connection's peer is its callback,
  and `send` calls each peer it is given, i.e. roomcast's own cost (room handle, backend,
  `Hub.deliver`, encode once) plus the least a transport can do;
- `TestClient`: the same broadcast to N `roomcast.testing.TestClient`s (the in-memory
  transport: JSON-encoded once, appended to each client's bounded inbox), for rooms
  of at most `--testclient-max` members.

Reported: deliveries/s of each and the cost ratio against the bare loop over a list (time
per delivery ÷ the bare loop's; the goal for roomcast's fan-out is <= 1.5). roomcast's
members join in the order their callbacks were made and a room keeps its members in the
order they joined, so roomcast and the list visit memory alike.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from roomcast import App, Request, Transport
from roomcast.testing import TestClient

from ._common import machine, table, write_json

PAYLOAD = {"author": "bench", "message": "x" * 64, "seq": 1, "t": 123.456}


class CallbackTransport(Transport):
    """The least a transport does: each connection's peer is a callback; call each one."""

    def encode(self, event: str, data: Any, *, offset: str | None = None) -> Any:
        return (event, data)

    async def send(self, peers: Iterable[Callable[[Any], None]], encoded: Any) -> None:
        for callback in peers:
            callback(encoded)

    async def close(self, sid: str) -> None:
        pass


async def timed(run: Callable[[], Awaitable[None]]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        await run()
        return time.perf_counter() - start
    finally:
        gc.enable()


async def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    rounds = max(1, args.deliveries // size)
    deliveries = rounds * size

    # The bare loops.
    inboxes = [deque[Any]() for _ in range(size)]
    callbacks = [inbox.append for inbox in inboxes]
    callback_set = set(callbacks)

    async def bare() -> None:
        for _ in range(rounds):
            for callback in callbacks:
                callback(PAYLOAD)

    async def bare_set() -> None:
        for _ in range(rounds):
            for callback in callback_set:
                callback(PAYLOAD)

    # roomcast with the callback transport.
    app = App()

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    transport = CallbackTransport()
    app_inboxes = [deque[Any]() for _ in range(size)]
    # Made side by side, as the bare loop's are: at 100,000 members where they lie in memory
    # (among the connections' other objects, or not) shows in the time.
    app_callbacks = [inbox.append for inbox in app_inboxes]
    for i, callback in enumerate(app_callbacks):
        sid = f"sid-{i}"
        await app.hub.opened(sid, None, transport, peer=callback)
        await app.hub.received(sid, "join", "room", None)
    assert await app.room("room").count() == size

    async def roomcast() -> None:
        for _ in range(rounds):
            await app.room("room").broadcast("message", PAYLOAD)

    ways: dict[str, Callable[[], Awaitable[None]]] = {
        "bare": bare,
        "bare set": bare_set,
        "roomcast": roomcast,
    }
    clears = [*inboxes, *app_inboxes]

    async with anyio.create_task_group() as tg:
        done = anyio.Event()
        if size <= args.testclient_max:
            test_app = App()
            test_app.route("join", join)

            async def member(*, task_status: TaskStatus[None]) -> None:
                # Every broadcast of every repetition stays buffered: no slow-consumer cut-off.
                async with TestClient(test_app, max_buffered=rounds * args.repeat + 1) as client:
                    await client.call("join", "room")
                    task_status.started()
                    await done.wait()

            # One task per client, side by side: nesting 100,000 `async with` blocks in one
            # task would make every checkpoint walk 100,000 cancel scopes.
            for _ in range(size):
                await tg.start(member)

            async def testclient() -> None:
                for _ in range(rounds):
                    await test_app.room("room").broadcast("message", PAYLOAD)

            ways["TestClient"] = testclient

        best = dict.fromkeys(ways, float("inf"))
        for _ in range(args.repeat):
            for name, run in ways.items():
                best[name] = min(best[name], await timed(run))
                for inbox in clears:
                    inbox.clear()
        done.set()
    assert all(not inbox for inbox in clears)
    return {
        "size": size,
        "rounds": rounds,
        "deliveries": deliveries,
        "seconds": best,
        "deliveries_per_s": {name: deliveries / s for name, s in best.items()},
        "cost_ratio": {name: s / best["bare"] for name, s in best.items()},
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for size in args.sizes:
        results.append(await measure(size, args))
    return results


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        rate, ratio = r["deliveries_per_s"], r["cost_ratio"]
        rows.append(
            [
                r["size"],
                rate["bare"],
                ratio["bare set"],
                rate["roomcast"],
                ratio["roomcast"],
                rate.get("TestClient"),
                ratio.get("TestClient"),
            ]
        )
    headers = [
        "members",
        "bare loop deliveries/s",
        "over a set: cost x bare",
        "roomcast deliveries/s",
        "roomcast cost x bare",
        "TestClient deliveries/s",
        "TestClient cost x bare",
    ]
    return table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See benchmarks/core.py for the method."
    )
    parser.add_argument("--sizes", default="10,1000,100000", help="members in the room")
    parser.add_argument(
        "--deliveries", type=int, default=1_000_000, help="deliveries per timed repetition"
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; the best counts")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument(
        "--testclient-max",
        type=int,
        default=100_000,
        help="largest room also measured with TestClients",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"core: {machine()}, anyio on {args.backend}")
    print(
        f"{args.deliveries:,} deliveries per repetition, best of {args.repeat}; payload "
        f"{len(str(PAYLOAD))} characters as a dict\n"
    )
    results = anyio.run(run, args, backend=args.backend)
    print(report(results))
    write_json(args.json, {"machine": machine(), "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
