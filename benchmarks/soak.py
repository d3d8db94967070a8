"""Soak: many connect/join/broadcast/disconnect cycles through TestClient leave nothing behind.

    python -m benchmarks.soak [--cycles 100000] [--rooms 10]

Prints the time per cycle, what is left (rooms, connections) and the memory held after the
run compared with after a warm-up (tracemalloc), which should stay flat.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from dataclasses import dataclass

import anyio

from roomcast import App, Request
from roomcast.testing import TestClient


@dataclass
class SoakResult:
    cycles: int
    seconds: float
    rooms_left: int
    connections_left: int
    memory_after_warmup: int
    memory_after_run: int

    @property
    def growth(self) -> int:
        return self.memory_after_run - self.memory_after_warmup


def make_app() -> App:
    app = App()

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)
        await app.room(req.data).broadcast("hello", req.sid)
        await req.respond(True)

    return app


async def cycles(app: App, count: int, rooms: int, stay: TestClient) -> None:
    for n in range(count):
        async with TestClient(app) as client:
            await client.call("join", f"room{n % rooms}")
            await client.receive()
        stay.drain()


async def soak(count: int, rooms: int = 10, warmup: int = 1_000) -> SoakResult:
    app = make_app()
    tracemalloc.start()
    try:
        # One client stays connected all along, in every room, so broadcasts have receivers.
        async with TestClient(app) as stay:
            for room in range(rooms):
                await stay.call("join", f"room{room}")
            stay.drain()
            await cycles(app, warmup, rooms, stay)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            started = time.perf_counter()
            await cycles(app, count, rooms, stay)
            seconds = time.perf_counter() - started
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        rooms_left = len(app.hub.index)
        return SoakResult(count, seconds, rooms_left, len(app.connections), before, after)
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=10)
    args = parser.parse_args()
    result = anyio.run(soak, args.cycles, args.rooms)
    print(
        f"{'cycles':>10} {'µs/cycle':>10} {'rooms left':>11} {'conns left':>11} "
        f"{'mem after warm-up':>18} {'mem after run':>14} {'growth':>9}"
    )
    print(
        f"{result.cycles:>10} {result.seconds / result.cycles * 1e6:>10.1f} "
        f"{result.rooms_left:>11} {result.connections_left:>11} "
        f"{result.memory_after_warmup:>18,} {result.memory_after_run:>14,} {result.growth:>9,}"
    )


if __name__ == "__main__":
    main()
