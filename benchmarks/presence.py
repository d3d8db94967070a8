"""Presence: join storms, `presence()` at scale, memory per track, and `app.call` round trips.

    .venv/bin/python -m benchmarks.presence [--sizes 1000,10000] [--redis-sizes 1000]
        [--redis-timeout SECONDS] [--windows 0.02] [--backends memory,redis]
        [--redis-url URL] [--presence-size 10000] [--presence-reps 100]
        [--memory-size 10000] [--calls 2000] [--callers 50]
        [--parts storm,presence,memory,calls] [--quick] [--json out.json]

Four parts, each printing a table. "memory" is an `App` with the in-memory backend; "redis"
is two `App`s, each with its own `RedisBackend` (same Redis, a fresh prefix whose keys are
deleted at the end), standing for two processes.

1. **Join storm.** N `TestClient`s connect (not timed; 250 at a time), then all at once each
   sends the event `track` (a route doing `await req.track("lobby", meta)`) into one room
   and waits for its acknowledgement. On Redis the clients are split evenly across the two
   apps, and **both apps run on this process's one event loop** (what one costs, the other
   waits for; the CPU column counts both). Timed from the start of the storm: `tracks done`
   (every `track` call acknowledged) and `converged` (the last `presence_state` or
   `presence_diff` handed to any member: the transport's `send` is wrapped to note the
   time). `us/track` divides `converged` by N, and the CPU time of this process over the
   storm by N. Then, off the clock, every member's inbox is checked: applying its
   `presence_state` then its diffs (the diffs that came before the state held back and
   applied after it; joins add the metas whose `"ref"` is new, leaves remove refs) must give
   exactly the N entries of `app.room("lobby").presence()`. Members that received the very
   same message objects in the same order are checked once (the result is a function of
   that sequence) and each distinct message is decoded once: that keeps checking 10,000
   members quick. `diffs/member` counts the `presence_diff`s each member received (without
   coalescing, up to N). `ping`: a separate client, in no room, sends `ping` (a route that
   answers `"pong"`) every ~10 ms during the storm and times the round trip; `idle` is the
   median of the same before the storm. The members do not read during the storm (readers
   would compete for the same cores as the server), so their queues are unbounded:
   `Limits(max_queued=None, max_queued_bytes=None)`; other limits are the defaults. What
   roomcast logs at WARNING is counted, not printed: a row says how often a backend gave up
   on Redis ("Redis lost").

   On Redis the default is N = 1,000 only: on this machine, from about 2,000 clients (it
   varies from run to run), some Redis operations of the storm queue for longer than
   `RedisBackend`'s `timeout` (2 s), the backend declares Redis unreachable and carries on
   locally, and the members disagree (at 10,000, none received anything). With
   `--redis-sizes 10000 --redis-timeout 30` it completes, but the storm alone takes about
   50 s (each coalesced batch reads the whole room back from Redis for its newcomers'
   `presence_state`, so the storm costs N x batches), and the check 15 s more.
2. **`presence()` latency** with `--presence-size` connections tracked in one room (of a
   do-nothing transport, driven through `app.hub`, 250 at a time; on Redis split across
   the two apps): median and p99 of `await app.room("lobby").presence()` over
   `--presence-reps` calls. On Redis this is an `HVALS` of the room's hash, then decoding
   and sorting every track.
3. **Memory per track.** With tracemalloc, what the app allocates (connections, rooms,
   tracks, kept after `gc.collect()`) for `--memory-size` connections of a do-nothing
   transport (churn's `NullTransport`, through `app.hub.opened/received`) that each joined
   the room, against as many that each tracked in it with a two-field meta; sids and metas
   are made beforehand, so not counted. The difference per connection is the cost of a track.
4. **Calls.** `await app.call(sid, "ping", i)` to a `TestClient` that answers with
   `c.on("ping", answer)`, an `async def` (a plain `def` runs in a worker thread: its rows
   say `sync def`), `--calls` calls made one after another, then by `--callers` tasks at
   once. `local`: the app holds the connection (in-memory backend). `other process`: the
   connection is held by an app in a **subprocess** (this module run with `--serve-calls`),
   and the calling app reaches it through Redis.

The machine is shared and noisy: compare the rows of one run, not figures across runs.
`--quick` runs everything at tiny sizes (the test suite does).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import secrets
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from roomcast import App, BackendUnavailable, Limits, Request, Transport, _codec
from roomcast.testing import TestClient
from roomcast.testing._client import _transport_of

from ._common import fail, machine, percentile, table, write_json
from .churn import NullTransport

ROOM = "lobby"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
CHUNK = 250
"""Connections opened (and, outside the storm, tracked) at once: the setup is no storm."""


class Warnings(logging.Handler):
    """Keeps what roomcast logs at WARNING and above (instead of printing it): the storms
    report how often a backend gave up on Redis."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def since(self, start: int) -> list[str]:
        return self.messages[start:]


WARNINGS = Warnings()


def meta_of(i: int) -> dict[str, Any]:
    return {"name": f"user{i}", "device": "web"}


def make_app(window: float, backend: Any = None, *, unbounded: bool = False) -> App:
    limits = Limits(max_queued=None, max_queued_bytes=None) if unbounded else Limits()
    app = App(backend=backend, limits=limits, presence_window=window)

    @app.route("track")
    async def track(req: Request) -> None:
        await req.track(ROOM, req.data)

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(ROOM)

    @app.route("ping")
    async def ping(req: Request) -> str:
        return "pong"

    return app


def redis_backend(args: argparse.Namespace) -> Any:
    from roomcast.backends.redis import RedisBackend

    options = {} if args.redis_timeout is None else {"timeout": args.redis_timeout}
    return RedisBackend(args.redis_url, prefix=args.prefix, **options)


def drop_prefix(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN + DEL); return how many there were."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


# -- 1. join storm ---------------------------------------------------------------------------


def watch_deliveries(transport: Transport, last: list[float]) -> None:
    """Wrap `transport.send` (on the instance) to note in `last[0]` when it last delivered."""
    send = transport.send

    async def timed_send(peers: Any, encoded: Any) -> None:
        await send(peers, encoded)
        last[0] = time.perf_counter()

    transport.send = timed_send  # type: ignore[method-assign]


def check_members(
    clients: Sequence[TestClient], expected: dict[str, list[dict[str, Any]]]
) -> tuple[int, list[int], int]:
    """How many of `clients` reach `expected` by applying what waits in their inbox; the
    diffs each received; how many distinct message sequences were applied."""
    want = {meta["ref"]: (key, meta) for key, metas in expected.items() for meta in metas}
    decoded: dict[int, tuple[str, Any]] = {}
    verdicts: dict[tuple[int, ...], bool] = {}
    agree = 0
    diffs: list[int] = []
    for client in clients:
        # The inbox as the transport filled it: the encoded messages, shared by every
        # receiver of a broadcast (read here, off the clock, instead of decoding them all).
        wires = list(client._received)
        for wire in wires:
            if id(wire) not in decoded:
                event, data = _codec.decode(wire)
                decoded[id(wire)] = (event, data)
        messages = [decoded[id(wire)] for wire in wires]
        diffs.append(sum(event == "presence_diff" for event, _ in messages))
        sequence = tuple(id(wire) for wire in wires)
        verdict = verdicts.get(sequence)
        if verdict is None:
            verdict = verdicts[sequence] = apply_all(messages) == want
        agree += verdict
    return agree, diffs, len(verdicts)


def apply_all(messages: Sequence[tuple[str, Any]]) -> dict[str, Any] | None:
    """A client's view of the room after `messages`: ref -> (key, meta); None without a
    single `presence_state`."""
    state: dict[str, Any] | None = None
    held: list[dict[str, Any]] = []
    states = 0
    for event, data in messages:
        if event == "presence_state":
            states += 1
            state = {
                meta["ref"]: (key, meta)
                for key, metas in data["presences"].items()
                for meta in metas
            }
            for diff in held:
                apply_diff(state, diff)
        elif event == "presence_diff":
            if state is None:
                held.append(data)
            else:
                apply_diff(state, data)
    return state if states == 1 else None


def apply_diff(state: dict[str, Any], diff: dict[str, Any]) -> None:
    for key, metas in diff["joins"].items():
        for meta in metas:
            if meta["ref"] not in state:
                state[meta["ref"]] = (key, meta)
    for metas in diff["leaves"].values():
        for meta in metas:
            state.pop(meta["ref"], None)


async def storm(n: int, apps: list[App], quiet: float) -> dict[str, Any]:
    last = [0.0]
    for app in apps:
        watch_deliveries(_transport_of(app), last)
    metas = [meta_of(i) for i in range(n)]
    clients: list[TestClient] = []
    connected, go, finished = anyio.Event(), anyio.Event(), anyio.Event()
    all_done = anyio.Event()
    done: list[float] = []
    failed: list[Any] = []

    gate = anyio.Semaphore(CHUNK)

    async def member(i: int) -> None:
        async with AsyncExitStack() as stack:
            async with gate:
                client = await stack.enter_async_context(TestClient(apps[i % len(apps)]))
            clients.append(client)
            if len(clients) == n:
                connected.set()
            await go.wait()
            reply = await client.call("track", metas[i], timeout=600)
            done.append(time.perf_counter())
            if reply is not None:
                failed.append(reply)
            if len(done) == n:
                all_done.set()
            await finished.wait()

    samples: list[tuple[float, float]] = []  # (sent at, round trip)

    async def pinger(client: TestClient, until: anyio.Event) -> None:
        tick = time.perf_counter()
        while not until.is_set():
            sent = time.perf_counter()
            await client.call("ping", timeout=600)
            samples.append((sent, time.perf_counter() - sent))
            tick = max(tick + 0.01, time.perf_counter())
            await anyio.sleep(max(0.0, tick - time.perf_counter()))

    result: dict[str, Any] = {"size": n}
    logged = len(WARNINGS.messages)
    async with TestClient(apps[0]) as probe, anyio.create_task_group() as tg:
        connect_start = time.perf_counter()
        for i in range(n):
            tg.start_soon(member, i)
        with anyio.fail_after(600):
            await connected.wait()
        result["connect_s"] = time.perf_counter() - connect_start
        idle_until = anyio.Event()
        tg.start_soon(pinger, probe, idle_until)
        await anyio.sleep(0.5)
        idle_until.set()
        idle = sorted(rtt for _, rtt in samples)
        samples.clear()
        await anyio.sleep(0.05)
        gc.collect()

        storm_over = anyio.Event()
        start = time.perf_counter()
        cpu_start = time.process_time()
        last[0] = start
        go.set()
        tg.start_soon(pinger, probe, storm_over)
        with anyio.fail_after(600):
            await all_done.wait()
        # Converged once nothing was delivered for `quiet` seconds (the diffs of the other
        # app come through Redis after every call has returned): nothing signals that.
        while time.perf_counter() - max(last[0], done[-1]) < quiet:  # noqa: ASYNC110
            await anyio.sleep(0.05)
        cpu = time.process_time() - cpu_start
        storm_over.set()
        converged = last[0] - start if last[0] > start else None  # None: nothing came
        during = sorted(rtt for sent, rtt in samples if sent <= max(last[0], done[-1]))

        check_start = time.perf_counter()
        expected = await room_presence(apps[0])
        agree, diffs, sequences = check_members(clients, expected)
        if agree < n:  # anything still on its way gets a second chance
            await anyio.sleep(2)
            expected = await room_presence(apps[0])
            agree, diffs, sequences = check_members(clients, expected)
            result["late"] = True
        check_s = time.perf_counter() - check_start
        warnings = WARNINGS.since(logged)
        result.update(
            present=len(expected),
            agree=agree,
            failed_calls=len(failed),
            tracks_done_s=max(done) - start,
            converged_s=converged,
            us_per_track_wall=None if converged is None else converged / n * 1e6,
            us_per_track_cpu=cpu / n * 1e6,
            diffs_median=statistics.median_low(diffs),
            diffs_min=min(diffs),
            diffs_max=max(diffs),
            sequences=sequences,
            ping_idle_ms=ms(statistics.median(idle)) if idle else None,
            ping_median_ms=ms(statistics.median(during)) if during else None,
            ping_max_ms=ms(during[-1]) if during else None,
            pings=len(during),
            check_s=check_s,
            redis_lost=sum("Redis is unreachable (" in m for m in warnings),
            warnings=len(warnings),
            first_warning=warnings[0] if warnings else None,
        )
        finished.set()
        teardown = time.perf_counter()
    result["teardown_s"] = time.perf_counter() - teardown
    return result


async def room_presence(app: App) -> dict[str, list[dict[str, Any]]]:
    """`app.room(ROOM).presence()`, waiting up to 10 s for a backend that lost Redis."""
    for _ in range(20):
        try:
            return await app.room(ROOM).presence()
        except BackendUnavailable:
            await anyio.sleep(0.5)
    return {}


async def run_storms(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for backend in args.backends:
        for window in args.windows:
            for n in args.sizes if backend == "memory" else args.redis_sizes:
                gc.collect()
                if backend == "memory":
                    result = await storm(n, [make_app(window, unbounded=True)], quiet=0.3)
                else:
                    apps = [
                        make_app(window, redis_backend(args), unbounded=True) for _ in range(2)
                    ]
                    async with apps[0], apps[1]:
                        result = await storm(n, apps, quiet=1.0)
                result.update(backend=backend, window=window)
                print(f"  storm {backend} N={n:,} window={window}: done", file=sys.stderr)
                results.append(result)
    return results


def report_storms(results: list[dict[str, Any]]) -> str:
    headers = [
        "backend",
        "N",
        "window ms",
        "tracks done s",
        "converged s",
        "us/track wall",
        "us/track CPU",
        "diffs/member med",
        "max",
        "ping idle ms",
        "ping med ms",
        "ping max ms",
        "members agreeing",
    ]
    rows = [
        [
            r["backend"],
            r["size"],
            r["window"] * 1e3,
            r["tracks_done_s"],
            r["converged_s"],
            r["us_per_track_wall"],
            r["us_per_track_cpu"],
            r["diffs_median"],
            r["diffs_max"],
            r["ping_idle_ms"],
            r["ping_median_ms"],
            r["ping_max_ms"],
            f"{r['agree']:,}/{r['size']:,}"
            + (" (late)" if r.get("late") else "")
            + (f" (Redis lost {r['redis_lost']}x)" if r["redis_lost"] else ""),
        ]
        for r in results
    ]
    notes = [
        f"{r['backend']} N={r['size']:,}: connect {r['connect_s']:.2f} s, "
        f"presence() has {r['present']:,} entries, {r['failed_calls']} calls failed, "
        f"{r['sequences']} distinct inboxes checked in {r['check_s']:.2f} s, "
        f"{r['pings']} pings, teardown (N disconnects) {r['teardown_s']:.2f} s"
        + (f"; {r['warnings']} warnings, the first: {r['first_warning']}" if r["warnings"] else "")
        for r in results
    ]
    return table(headers, rows) + "\n\n" + "\n".join(notes)


# -- 2. presence() latency -------------------------------------------------------------------


async def populate(
    apps: list[App], transport: Transport, n: int, event: str, prefix: str = "s"
) -> None:
    """Open `n` connections of `transport` (spread over `apps`) and send each `event`
    (`track`, `join`) at once; return when every handler has returned."""
    sids = [f"{prefix}{i}" for i in range(n)]
    metas = [meta_of(i) for i in range(n)]
    for start in range(0, n, CHUNK):
        async with anyio.create_task_group() as tg:
            for i in range(start, min(n, start + CHUNK)):
                tg.start_soon(apps[i % len(apps)].hub.opened, sids[i], None, transport)
    for start in range(0, n, CHUNK):
        async with anyio.create_task_group() as tg:
            for i in range(start, min(n, start + CHUNK)):
                tg.start_soon(apps[i % len(apps)].hub.received, sids[i], event, metas[i], None)


async def time_presence(apps: list[App], n: int, reps: int) -> dict[str, Any]:
    await populate(apps, NullTransport(), n, "track")
    await anyio.sleep(0.2)  # the last diffs go out
    room = apps[0].room(ROOM)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        present = await room.presence()
        times.append(time.perf_counter() - start)
        if len(present) != n:
            fail(f"presence() has {len(present)} entries, not {n}")
    times.sort()
    return {
        "size": n,
        "reps": reps,
        "median_ms": ms(statistics.median(times)),
        "p99_ms": ms(percentile(times, 0.99)),
        "min_ms": ms(times[0]),
    }


async def run_presence(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for backend in args.backends:
        gc.collect()
        if backend == "memory":
            result = await time_presence([make_app(0.02)], args.presence_size, args.presence_reps)
        else:
            apps = [make_app(0.02, redis_backend(args)) for _ in range(2)]
            async with apps[0], apps[1]:
                result = await time_presence(apps, args.presence_size, args.presence_reps)
        results.append({"backend": backend, **result})
    return results


def report_presence(results: list[dict[str, Any]]) -> str:
    headers = ["backend", "tracked", "calls", "median ms", "p99 ms", "min ms"]
    rows = [
        [r["backend"], r["size"], r["reps"], r["median_ms"], r["p99_ms"], r["min_ms"]]
        for r in results
    ]
    return table(headers, rows)


# -- 3. memory per track ----------------------------------------------------------------------


async def allocated_for(n: int, event: str) -> int:
    """What an app allocates, kept after gc, for `n` connections that each sent `event`."""
    gc.collect()
    tracemalloc.start()
    app = make_app(0.02)
    await populate([app], NullTransport(), n, event)
    gc.collect()
    allocated = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    expected = n if event == "track" else 0
    if len(await app.room(ROOM).presence()) != expected or len(app.connections) != n:
        fail(f"memory: the app does not hold {n} connections each having sent {event}")
    return allocated


async def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    n = args.memory_size
    joined = await allocated_for(n, "join")
    tracked = await allocated_for(n, "track")
    return {
        "size": n,
        "joined_bytes_per_connection": joined / n,
        "tracked_bytes_per_connection": tracked / n,
        "bytes_per_track": (tracked - joined) / n,
    }


def report_memory(result: dict[str, Any]) -> str:
    headers = ["connections", "bytes/conn joined", "bytes/conn tracked", "bytes per track"]
    rows = [
        [
            result["size"],
            result["joined_bytes_per_connection"],
            result["tracked_bytes_per_connection"],
            result["bytes_per_track"],
        ]
    ]
    return table(headers, rows)


# -- 4. calls ---------------------------------------------------------------------------------


def answerers(client: TestClient) -> None:
    async def ping(data: Any) -> Any:
        return data

    def ping_sync(data: Any) -> Any:
        return data

    client.on("ping", ping)
    client.on("ping_sync", ping_sync)


async def time_calls(
    call: Callable[[int], Awaitable[Any]], total: int, callers: int
) -> dict[str, Any]:
    """`total` calls by `callers` tasks at once, each making its share one after another."""
    latencies: list[float] = []

    async def caller(count: int, base: int) -> None:
        for i in range(base, base + count):
            sent = time.perf_counter()
            answer = await call(i)
            latencies.append(time.perf_counter() - sent)
            if answer != i:
                fail(f"a call was answered {answer!r}, not {i!r}")

    for i in range(min(20, total)):  # warm-up: threads, connections
        await call(i)
    share = max(1, total // callers)
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for c in range(callers):
            tg.start_soon(caller, share, c * share)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "callers": callers,
        "calls": share * callers,
        "per_s": share * callers / elapsed,
        "median_ms": ms(statistics.median(latencies)),
        "p99_ms": ms(percentile(latencies, 0.99)),
    }


async def calls_both_ways(
    where: str, app: App, sid: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    results = []
    for event, answerer in (("ping", "async def"), ("ping_sync", "sync def")):
        for callers in (1, args.callers):

            async def call(i: int, event: str = event) -> Any:
                return await app.call(sid, event, i, timeout=30)

            result = await time_calls(call, args.calls, callers)
            results.append({"where": where, "answerer": answerer, **result})
    return results


async def run_calls(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    if "memory" in args.backends:
        app = make_app(0.02)
        async with TestClient(app) as client:
            answerers(client)
            results += await calls_both_ways("local", app, client.sid, args)
    if "redis" in args.backends:
        command = [
            sys.executable,
            "-m",
            "benchmarks.presence",
            "--serve-calls",
            *("--redis-url", args.redis_url, "--prefix", args.prefix),
        ]
        app = make_app(0.02, redis_backend(args))
        async with await anyio.open_process(command, stderr=None) as process, app:
            assert process.stdout is not None
            assert process.stdin is not None
            with anyio.fail_after(30):
                line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)
            sid = json.loads(line)["sid"]
            results += await calls_both_ways("other process", app, sid, args)
            await process.stdin.aclose()
            with anyio.fail_after(30):
                await process.wait()
    return results


async def serve_calls(args: argparse.Namespace) -> None:
    """The other process of the calls part: one client that answers, until stdin closes."""
    app = make_app(0.02, redis_backend(args))
    async with app, TestClient(app) as client:
        answerers(client)
        print(json.dumps({"sid": client.sid}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)


def report_calls(results: list[dict[str, Any]]) -> str:
    headers = ["connection", "answerer", "callers", "calls", "calls/s", "median ms", "p99 ms"]
    keys = ["where", "answerer", "callers", "calls", "per_s", "median_ms", "p99_ms"]
    rows = [[r[key] for key in keys] for r in results]
    return table(headers, rows)


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "storm" in args.parts:
        print("1. join storm: N clients track into one room at once\n", flush=True)
        results["storm"] = await run_storms(args)
        print(report_storms(results["storm"]) + "\n", flush=True)
    if "presence" in args.parts:
        print(f"2. presence() with {args.presence_size:,} tracked\n", flush=True)
        results["presence"] = await run_presence(args)
        print(report_presence(results["presence"]) + "\n", flush=True)
    if "memory" in args.parts:
        print("3. memory per tracked connection (in-memory backend)\n", flush=True)
        results["memory"] = await run_memory(args)
        print(report_memory(results["memory"]) + "\n", flush=True)
    if "calls" in args.parts:
        print("4. app.call round trips\n", flush=True)
        results["calls"] = await run_calls(args)
        print(report_calls(results["calls"]) + "\n", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See benchmarks/presence.py for the method."
    )
    parser.add_argument("--sizes", default="1000,10000", help="clients in each join storm")
    parser.add_argument(
        "--redis-sizes", default="1000", help="clients in each join storm on Redis"
    )
    parser.add_argument(
        "--redis-timeout", type=float, help="RedisBackend(timeout=...) (default: its own, 2 s)"
    )
    parser.add_argument("--windows", default="0.02", help="presence_window values, seconds")
    parser.add_argument("--backends", default="memory,redis", help="memory, redis or both")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--presence-size", type=int, default=10_000)
    parser.add_argument("--presence-reps", type=int, default=100)
    parser.add_argument("--memory-size", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=2000, help="calls in each row")
    parser.add_argument("--callers", type=int, default=50, help="concurrent callers")
    parser.add_argument(
        "--parts", default="storm,presence,memory,calls", help="which parts to run"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to see that it runs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve-calls", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_calls:
        anyio.run(serve_calls, args, backend="asyncio")
        return
    if args.quick:
        args.sizes, args.redis_sizes = "50,100", "50,100"
        args.presence_size, args.presence_reps = 200, 10
        args.memory_size, args.calls, args.callers = 200, 100, 10
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.redis_sizes = [int(s) for s in args.redis_sizes.split(",") if s]
    args.windows = [float(w) for w in args.windows.split(",") if w]
    args.backends = [b for b in args.backends.split(",") if b]
    if not set(args.backends) <= {"memory", "redis"}:
        parser.error("--backends: memory, redis or both")
    args.parts = [part for part in args.parts.split(",") if part]
    if not set(args.parts) <= {"storm", "presence", "memory", "calls"}:
        parser.error("--parts: among storm, presence, memory, calls")
    args.prefix = f"roomcast-bench-{secrets.token_hex(4)}:"
    print(f"presence: {machine()}, asyncio")
    print(f"backends {', '.join(args.backends)}; Redis prefix {args.prefix}\n")
    logging.getLogger("roomcast").addHandler(WARNINGS)  # counted in the storm's notes
    try:
        results = anyio.run(run, args, backend="asyncio")
    finally:
        if "redis" in args.backends:
            left = drop_prefix(args.redis_url, args.prefix)
            print(f"Redis keys the apps left behind (now deleted): {left}")
    if "redis" in args.backends:
        results["redis_keys_left"] = left
    write_json(args.json, {"machine": machine(), "args": vars(args), **results})


if __name__ == "__main__":
    main()
