"""Churn: the cost of connect, join, leave and disconnect as the number of connections grows.

    .venv/bin/python -m benchmarks.churn [--sizes 1000,10000,100000] [--ops 5000]
        [--repeat 5] [--backend asyncio|trio] [--json out.json]

At each size N, an `App` (in-memory backend) holds N connections of a do-nothing `Transport`
(benchmarks-only), each a member of 1 to 3 rooms drawn at random among N rooms (seeded), as a
transport would make them: `hub.opened`, then the event `join` (a route doing
`await req.join(name)`) through `hub.received`. Then, at that steady size, each repetition
times `--ops` operations of each kind in a batch:

- `connect`: `hub.opened` of a new connection;
- `join`: the event `join` of a new connection into 1 to 3 random rooms (per join);
- `leave`: the event `leave` (`await req.leave(name)`) of one of its rooms;
- `disconnect`: `hub.closed` of an old connection (with its 1 to 3 rooms), so that
  the app keeps N connections.

The best repetition counts (gc stays on: it is part of the cost at scale). Memory per
connection: a separate pass builds the same N connections under `tracemalloc` and divides
what the app allocated by N (sids and room names are made beforehand, so not counted).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Iterable
from typing import Any

import anyio

from roomcast import App, Request, Transport

from ._common import machine, table, write_json


class NullTransport(Transport):
    """A transport that sends nowhere: churn measures membership, not delivery."""

    def encode(self, event: str, data: Any, *, offset: str | None = None) -> Any:
        return None

    async def send(self, peers: Iterable[Any], encoded: Any) -> None:
        pass

    async def close(self, sid: str) -> None:
        pass


def make_app() -> App:
    app = App()

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    @app.route("leave")
    async def leave(req: Request) -> None:
        await req.leave(req.data)

    return app


async def populate(
    app: App, transport: Transport, plan: list[tuple[str, list[str]]]
) -> tuple[float, float]:
    """Connect each planned sid and join its rooms; return the seconds of each phase."""
    start = time.perf_counter()
    for sid, _ in plan:
        await app.hub.opened(sid, None, transport)
    middle = time.perf_counter()
    for sid, rooms in plan:
        for room in rooms:
            await app.hub.received(sid, "join", room, None)
    return middle - start, time.perf_counter() - middle


def make_plan(
    rng: random.Random, prefix: str, count: int, rooms: list[str]
) -> list[tuple[str, list[str]]]:
    return [(f"{prefix}-{i}", rng.sample(rooms, rng.randint(1, 3))) for i in range(count)]


async def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(size)
    rooms = [f"room-{i}" for i in range(size)]
    plan = make_plan(rng, "sid", size, rooms)
    memberships = sum(len(r) for _, r in plan)

    # Memory: the same population, under tracemalloc.
    gc.collect()
    tracemalloc.start()
    app, transport = make_app(), NullTransport()
    await populate(app, transport, plan)
    gc.collect()
    allocated = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(app.connections) == size
    del app, transport
    gc.collect()

    # Time: steady-state churn at `size` connections.
    app, transport = make_app(), NullTransport()
    await populate(app, transport, plan)
    alive = [sid for sid, _ in plan]
    best = {"connect": float("inf"), "join": float("inf"), "leave": float("inf")}
    best["disconnect"] = float("inf")
    ops = min(args.ops, size)
    for rep in range(args.repeat):
        fresh = make_plan(rng, f"new{rep}", ops, rooms)
        joins = sum(len(r) for _, r in fresh)
        old = [alive[i] for i in rng.sample(range(len(alive)), ops)]
        gc.collect()
        t0 = time.perf_counter()
        for sid, _ in fresh:
            await app.hub.opened(sid, None, transport)
        t1 = time.perf_counter()
        for sid, joined in fresh:
            for room in joined:
                await app.hub.received(sid, "join", room, None)
        t2 = time.perf_counter()
        for sid, joined in fresh:
            await app.hub.received(sid, "leave", joined[0], None)
        t3 = time.perf_counter()
        for sid in old:
            await app.hub.closed(sid)
        t4 = time.perf_counter()
        best["connect"] = min(best["connect"], (t1 - t0) / ops)
        best["join"] = min(best["join"], (t2 - t1) / joins)
        best["leave"] = min(best["leave"], (t3 - t2) / ops)
        best["disconnect"] = min(best["disconnect"], (t4 - t3) / ops)
        gone = set(old)
        alive = [sid for sid in alive if sid not in gone] + [sid for sid, _ in fresh]
        assert len(app.connections) == size
    return {
        "size": size,
        "rooms": len({room for _, joined in plan for room in joined}),
        "memberships": memberships,
        "ops": ops,
        "us_per_op": {name: seconds * 1e6 for name, seconds in best.items()},
        "bytes_per_connection": allocated / size,
        "ops_counted": ops * args.repeat,
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [await measure(size, args) for size in args.sizes]


def report(results: list[dict[str, Any]]) -> str:
    rows = [
        [
            r["size"],
            r["rooms"],
            r["us_per_op"]["connect"],
            r["us_per_op"]["join"],
            r["us_per_op"]["leave"],
            r["us_per_op"]["disconnect"],
            r["bytes_per_connection"],
        ]
        for r in results
    ]
    headers = [
        "connections",
        "rooms",
        "connect us/op",
        "join us/op",
        "leave us/op",
        "disconnect us/op",
        "bytes/connection",
    ]
    text = table(headers, rows)
    if len(results) > 1:
        first, last = results[0]["us_per_op"], results[-1]["us_per_op"]
        growth = ", ".join(f"{name} {last[name] / first[name]:.2f}x" for name in first)
        text += (
            f"\n\ntime per op at {results[-1]['size']:,} / at {results[0]['size']:,} "
            f"connections: {growth}"
        )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See benchmarks/churn.py for the method."
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="connections")
    parser.add_argument("--ops", type=int, default=5000, help="operations of each kind timed")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; the best counts")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"churn: {machine()}, anyio on {args.backend}")
    print(
        f"1-3 rooms per connection among as many rooms; up to {args.ops:,} ops of each kind "
        f"per repetition, best of {args.repeat}\n"
    )
    results = anyio.run(run, args, backend=args.backend)
    print(report(results))
    write_json(args.json, {"machine": machine(), "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
