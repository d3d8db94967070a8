"""Connection-state recovery: 1,000 clients back after a drop, and what recovery keeps.

    .venv/bin/python -m benchmarks.recovery [--clients 1000] [--messages 0,100] [--away 5]
        [--payload 100] [--repeat 1] [--entries 10000] [--absents 10000]
        [--claim-logs 100,10000,100000] [--parts recovery,memory,claims] [--quick]
        [--json out.json]

Three parts, each printing a table. The machine is shared and noisy: compare the rows of one
run, not figures across runs. `--quick` runs everything at tiny sizes (the test suite does).

1. **Recovery, end to end.** A roomcast app with `attach(app, sio, recovery=--window)` (120 s)
   and the default `Limits`, served by uvicorn (ws="websockets-sansio", no per-message deflate,
   as `benchmarks.fanout_server` runs it) in a process of its own (this module with `--serve`):
   routes `join` (the sender joins a room), `burst` (`app.room("r").broadcast` of `count`
   events, one after the other, answered with the figures below) and `stats` (the transport's
   `recovery.logged`, `log_bytes`, `absent`, `absent_bytes`, the open connections and the
   process's VmRSS). A Node load generator (`recovery_client.js`, socket.io-client 4.8 from
   `benchmarks/node_modules`, websocket transport) opens N connections in batches of 50, each
   joining room `r`, and one control connection in no room. The server broadcasts one `hello`
   to `r` (every client then holds an offset), then the generator closes every client's
   connection at once as a network loss would (`socket.io.engine.close()`). Once the server
   counts N absent connections, it broadcasts M events `m` to `r` (`{seq, text}`, `--payload`
   characters of text, to no one: every member is away). socket.io-client reconnects by itself
   after `reconnectionDelay` (`--away` s, with no randomization: all of them together).

   Measured from the first reconnect attempt: `all back` (the last client's `connect` with
   `socket.recovered === true`), `all complete` (the last client both back and holding all M
   events) and their medians; `replay events/s` is the N x M missed events delivered divided by
   `all complete`. Every client is checked: it must come back recovered, with its old
   `socket.id`, and receive every `m` once, in order (seq 0..M-1): `recovered`, `same sid` and
   `complete` count those that did; duplicates, events out of order and missing events are
   counted in all. The CPU of the server and of the generator (100% = one core) are over the
   recovery (first attempt to all complete). A second table gives what the server held: its
   VmRSS with N connected, with N absent and the M events logged, and after the recovery, and
   the recovery's own figures while the clients were away (`logged`/`log bytes`, `absent`/
   `absent bytes`: what the bounds count). M = 0 (in the default `--messages 0,100`) is the
   reconnection storm alone, with nothing to replay.

2. **Memory per kept message and per absent session**, in this process, with tracemalloc:
   `--entries` messages recorded in the log of a real `SocketIOTransport`'s `Recovery` (so
   encoded as the transport sends them: `_size_of` encodes once, for every receiver), each a
   room broadcast as `app.room("r").broadcast("message", data)` makes it (its own `Target`)
   with a chat message of about 100 bytes of JSON as data; and `--absents` absent sessions
   (`Recovery.dropped`) each with a python-socketio-like sid, a private id, 3 rooms (two
   shared names, one of its own) and a 3-key session dict. Everything an entry or a record
   holds is allocated under tracemalloc and kept after `gc.collect()`: traced bytes divided by
   the count. The app's own data (the message's data dict, the session dict) is measured
   apart, and the sizes the bounds count (`log_bytes`, `absent_bytes`) are given beside.

3. **The cost of a claim against the log's length.** A `Recovery` whose log holds L entries
   (each of the `--claim-logs`); `--claims` absent sessions, each of which missed the last
   100, claim (`claim(pid, offset)`) and get what they missed (`missed(claim)`): microseconds
   per recovery. That is what the server does, on its event loop, for each client that
   reconnects.

Needs `node` and `npm ci --prefix benchmarks` for part 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

from ._common import (
    HERE,
    ROOT,
    cpu_seconds,
    machine,
    memory_kb,
    raise_open_files_limit,
    table,
    write_json,
)

NODE_MODULES = HERE / "node_modules"
GENERATOR = HERE / "recovery_client.js"
ROOM = "r"


# -- the server (`--serve`) ----------------------------------------------------------------------


def build_server(window: float) -> Any:
    """The benchmark's server: a roomcast app recovering connections for `window` seconds."""
    import socketio

    from roomcast import App, Request
    from roomcast.adapters.socketio import attach

    from .fanout_server import Built

    app = App()
    sio = socketio.AsyncServer(async_mode="asgi")
    transport = attach(app, sio, recovery=window)

    @app.route("join")
    async def join(req: Request) -> str:
        await req.join(req.data)
        return "ok"

    def figures() -> dict[str, Any]:
        recovery = transport.recovery
        assert recovery is not None
        memory = memory_kb(os.getpid())
        return {
            "logged": recovery.logged,
            "log_bytes": recovery.log_bytes,
            "absent": recovery.absent,
            "absent_bytes": recovery.absent_bytes,
            "connections": len(app.connections),
            "rss_kb": memory["rss"] if memory else None,
            "stats": dataclasses.asdict(app.stats),
        }

    @app.route("stats")
    async def stats(req: Request) -> dict[str, Any]:
        return figures()

    @app.route("burst")
    async def burst(req: Request) -> dict[str, Any]:
        event, count, payload = req.data["event"], req.data["count"], req.data["payload"]
        text = "x" * payload
        room = app.room(ROOM)
        for seq in range(count):
            await room.broadcast(event, {"seq": seq, "text": text})
        return figures()

    return Built(sio, app, transport)


def serve(window: float) -> None:
    import asyncio

    from .fanout_server import serve_uvicorn

    raise_open_files_limit()
    asyncio.run(serve_uvicorn(build_server(window), "websockets-sansio"))


# -- part 1: recovery end to end -----------------------------------------------------------------


def expect(lines: Any, event: str, timeout: float) -> dict[str, Any]:
    """The generator's next line of `event` (the lines before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = lines.next_json(max(0.1, deadline - time.monotonic()), event)
        if found.get("event") == event:
            return found


def run_one(clients: int, messages: int, args: argparse.Namespace) -> dict[str, Any]:
    """A server and a generator: N clients dropped, M events sent meanwhile, all back."""
    from .fanout import Lines, stop, tail

    with (
        tempfile.TemporaryFile("w+") as server_err,
        tempfile.TemporaryFile("w+") as client_err,
    ):
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.recovery",
                "--serve",
                "--window",
                str(args.window),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=server_err,
            text=True,
        )
        client: subprocess.Popen[str] | None = None
        try:
            port = Lines(server.stdout).next_json(30, "port from the server")["port"]  # type: ignore[arg-type]
            client = subprocess.Popen(
                [
                    "node",
                    str(GENERATOR),
                    *("--url", f"http://127.0.0.1:{port}"),
                    *("--clients", str(clients)),
                    *("--messages", str(messages)),
                    *("--away", str(round(args.away * 1000))),
                    *("--batch", str(args.batch)),
                    *("--payload", str(args.payload)),
                    *("--timeout", str(args.timeout)),
                ],
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=client_err,
                text=True,
            )
            lines = Lines(client.stdout)  # type: ignore[arg-type]
            connected = expect(lines, "connected", 60 + clients * 0.1)
            rss_connected = memory_kb(server.pid)
            expect(lines, "dropped", 30)
            absent = expect(lines, "absent", 30 + args.away)
            burst = expect(lines, "burst", 60)
            rss_away = memory_kb(server.pid)
            expect(lines, "reconnecting", args.away + 60)
            pids = [server.pid, client.pid]
            t0, cpu0 = time.perf_counter(), [cpu_seconds(pid) for pid in pids]
            expect(lines, "complete", args.timeout + 30)
            t1, cpu1 = time.perf_counter(), [cpu_seconds(pid) for pid in pids]
            result = expect(lines, "result", 60)
            rss_after = memory_kb(server.pid)
            client.wait(30)
        except Exception as exc:
            message = f"recovery with {clients} clients and {messages} messages failed: {exc}"
            if client is not None:
                stop(client)
                message += f"\n--- load generator stderr ---\n{tail(client_err)}"
            stop(server)
            message += f"\n--- server stderr ---\n{tail(server_err)}"
            raise RuntimeError(message) from exc
        finally:
            if client is not None:
                stop(client)
            stop(server)
        server_log = [line for line in tail(server_err).splitlines() if line.strip()][:10]
    wall = t1 - t0
    server_cpu, client_cpu = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    result.update(
        server_cpu_s=server_cpu,
        server_cpu=100 * server_cpu / wall,
        client_cpu=100 * client_cpu / wall,
        rss_kb={
            "connected": rss_connected and rss_connected["rss"],
            "away": rss_away and rss_away["rss"],
            "after": rss_after and rss_after["rss"],
            "peak": rss_after and rss_after["peak"],
        },
        absent_seen=absent["stats"],
        burst_stats=burst["stats"],
        connected_stats=connected["stats"],
        server_log=server_log,
    )
    return result


def recovery_report(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        rows.append(
            [
                r["clients"],
                r["messages"],
                r["recovered"],
                r["same_id"],
                r["complete"],
                f"{r['duplicates']} / {r['out_of_order']} / {r['missing']}",
                r["recovered_s"],
                r["complete_s"],
                r["complete_median_s"],
                r["replayed"],
                r["replay_per_s"],
                r["server_cpu_s"],
                r["server_cpu"],
                r["client_cpu"],
            ]
        )
    headers = [
        "N",
        "missed",
        "recovered",
        "same sid",
        "complete",
        "dup / disorder / missing",
        "all back s",
        "all complete s",
        "median complete s",
        "replayed",
        "replay events/s",
        "server CPU-s",
        "server CPU%",
        "generator CPU%",
    ]
    text = (
        "N clients dropped at once, `missed` events broadcast to their room while away, all "
        "back together;\ntimes from the first reconnect attempt; complete: back recovered, "
        "with every missed event in order, once\n\n"
    )
    text += table(headers, rows)

    held = []
    for r in results:
        rss = r["rss_kb"]
        mb = {k: None if v is None else v / 1024 for k, v in rss.items()}
        away = r["burst_stats"]
        held.append(
            [
                r["clients"],
                r["messages"],
                mb["connected"],
                mb["away"],
                mb["after"],
                away["logged"],
                away["log_bytes"],
                away["absent"],
                away["absent_bytes"],
                r["stats"]["after"]["absent"],
                r["absent_after_ms"],
                r["burst_ms"],
                r["away_ms"],
                r["attempts_spread_ms"],
                r["connect_errors"],
            ]
        )
    headers = [
        "N",
        "missed",
        "RSS MB connected",
        "away",
        "after",
        "logged",
        "log bytes",
        "absent",
        "absent bytes",
        "absent after",
        "all absent ms",
        "burst ms",
        "away ms",
        "attempts spread ms",
        "connect errors",
    ]
    text += (
        "\n\nwhat the server held: VmRSS with N connected, while away (M events logged), after "
        "the recovery;\nthe recovery's figures while away (logged, log bytes, absent, absent "
        "bytes: what the bounds count)\nand after it; all absent: from the drop until the "
        "server counted N absent; away: from the drop\nto the first reconnect attempt\n\n"
    )
    text += table(headers, held)
    notes = []
    for r in results:
        run = f"N={r['clients']} M={r['messages']}"
        if not r["burst_done_before_reconnect"]:
            notes.append(f"{run}: the burst ended after reconnects began")
        if r["timed_out"]:
            notes.append(f"{run}: not every client was complete in time")
        if r["server_log"]:
            notes.append(f"{run}: the server logged: {r['server_log'][0]}")
    if notes:
        text += "\n" + "\n".join(f"note: {note}" for note in notes)
    return text


# -- part 2: memory per kept message and per absent session ------------------------------------


def chat_message(i: int) -> dict[str, Any]:
    """A chat message of about 100 bytes as JSON."""
    return {
        "author": f"user-{i % 10_000:04d}",
        "text": f"message {i:06d}: " + "lorem ipsum dolor sit amet, consectetur a",
        "ts": 1_764_806_400.0 + i,
    }


def socketio_transport() -> Any:
    """A real `SocketIOTransport` recovering connections (no server runs: its encoding and
    its `Recovery` are what is measured)."""
    import socketio

    from roomcast import App
    from roomcast.adapters.socketio import attach

    return attach(App(), socketio.AsyncServer(async_mode="asgi"), recovery=120.0)


def traced(build: Any) -> tuple[int, Any]:
    """What `build()` allocates and keeps (after gc), in bytes, and what it returned."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, kept


def memory(entries: int, absents: int) -> dict[str, Any]:
    from roomcast._message import Outgoing, Target

    transport = socketio_transport()
    recovery = transport.recovery
    # Warm up the encoding (caches, first-use allocations) outside the measurement.
    recovery.record(Target(frozenset((ROOM,))), Outgoing("message", chat_message(-1)))
    sample = chat_message(0)
    payload_bytes = len(json.dumps(sample, separators=(",", ":")))
    encoded = transport.encode("message", sample, offset=f"{recovery.epoch}-{1:x}")
    data_bytes, _ = traced(lambda: [chat_message(i) for i in range(entries)])
    logged, log_bytes_before = recovery.logged, recovery.log_bytes

    def record() -> None:
        for i in range(entries):
            recovery.record(Target(frozenset((ROOM,))), Outgoing("message", chat_message(i)))

    entries_bytes, _ = traced(record)
    assert recovery.logged == logged + entries, "the log dropped entries: raise its bounds"
    counted_entry = (recovery.log_bytes - log_bytes_before) / entries

    # Absent sessions: a python-socketio-like sid (20 characters), a private id, 3 rooms (two
    # names every member shares, held by the rooms anyway, and one of its own), a session.
    shared = ("lobby", "team-7")
    sessions_bytes, _ = traced(
        lambda: [
            {"user": f"user-{i:06d}", "name": "Alice", "joined": 1_764_806_400.0 + i}
            for i in range(absents)
        ]
    )

    def drop() -> None:
        for i in range(absents):
            sid = secrets.token_urlsafe(15)
            rooms = frozenset((*shared, f"user:{i:06d}"))
            session = {"user": f"user-{i:06d}", "name": "Alice", "joined": 1_764_806_400.0 + i}
            recovery.dropped(sid, recovery.new_pid(), rooms, session, recovery.number)

    absent_before = recovery.absent_bytes
    absents_bytes, _ = traced(drop)
    assert recovery.absent == absents, "absent sessions were forgotten: raise the bounds"
    return {
        "entries": entries,
        "payload_json_bytes": payload_bytes,
        "encoded_frame_bytes": len(encoded.frames[0]) if encoded.frames else 0,
        "entry_bytes": entries_bytes / entries,
        "entry_data_bytes": data_bytes / entries,
        "entry_counted_bytes": counted_entry,
        "absents": absents,
        "absent_bytes": absents_bytes / absents,
        "absent_session_bytes": sessions_bytes / absents,
        "absent_counted_bytes": (recovery.absent_bytes - absent_before) / absents,
    }


def memory_report(m: dict[str, Any]) -> str:
    rows = [
        [
            f"kept message ({m['payload_json_bytes']}-byte JSON data)",
            m["entries"],
            m["entry_bytes"],
            m["entry_data_bytes"],
            m["entry_bytes"] - m["entry_data_bytes"],
            m["entry_counted_bytes"],
        ],
        [
            "absent session (3 rooms, 3-key session)",
            m["absents"],
            m["absent_bytes"],
            m["absent_session_bytes"],
            m["absent_bytes"] - m["absent_session_bytes"],
            m["absent_counted_bytes"],
        ],
    ]
    headers = [
        "what",
        "count",
        "bytes each",
        "of which app data",
        "recovery's own",
        "counted by the bounds",
    ]
    return (
        "memory per kept message and per absent session (tracemalloc, kept after gc); app "
        "data: the\nmessage's data dict, the session dict; counted by the bounds: log_bytes / "
        "absent_bytes per item\n\n" + table(headers, rows)
    )


# -- part 3: the cost of a claim ----------------------------------------------------------------


def claim_cost(log_length: int, claims: int, missed: int = 100) -> dict[str, Any]:
    from roomcast._message import Outgoing, Target
    from roomcast._recovery import Recovery

    recovery = Recovery(
        120.0, lambda message: 100, max_entries=max(log_length, 100_000), max_bytes=1 << 40
    )
    target = Target(frozenset((ROOM,)))
    since = max(0, log_length - missed)
    for i in range(log_length):
        recovery.record(target, Outgoing("message", i))
    pids = []
    for i in range(claims):
        pid = recovery.new_pid()
        recovery.dropped(f"sid{i}", pid, frozenset((ROOM,)), {}, since)
        pids.append(pid)
    offset = f"{recovery.epoch}-{since:x}" if since else None
    times = []
    got = 0
    for pid in pids:
        t0 = time.perf_counter()
        claim = recovery.claim(pid, offset)
        assert claim is not None
        got += len(recovery.missed(claim))
        times.append(time.perf_counter() - t0)
    assert got == claims * min(missed, log_length), got
    return {
        "log_entries": log_length,
        "claims": claims,
        "missed": min(missed, log_length),
        "us_per_claim": 1e6 * statistics.median(times),
        "us_max": 1e6 * max(times),
    }


def claims_report(results: list[dict[str, Any]]) -> str:
    rows = [
        [r["log_entries"], r["claims"], r["missed"], r["us_per_claim"], r["us_max"]]
        for r in results
    ]
    headers = ["log entries", "claims", "missed each", "us per claim + missed (median)", "max"]
    return (
        "the cost of one recovery (Recovery.claim, then .missed) against the log's length\n\n"
        + table(headers, rows)
    )


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (benchmarks/recovery.py) for the method.",
    )
    parser.add_argument("--clients", type=int, default=1000, help="N: clients dropped at once")
    parser.add_argument(
        "--messages", default="0,100", help="M: events sent while away (one run for each)"
    )
    parser.add_argument("--away", type=float, default=5.0, help="seconds before reconnecting")
    parser.add_argument("--payload", type=int, default=100, help="characters of text per event")
    parser.add_argument("--batch", type=int, default=50, help="connections opened at a time")
    parser.add_argument("--window", type=float, default=120.0, help="the recovery window, s")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for every client"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of part 1")
    parser.add_argument("--entries", type=int, default=10_000, help="kept messages (part 2)")
    parser.add_argument("--absents", type=int, default=10_000, help="absent sessions (part 2)")
    parser.add_argument("--claim-logs", default="100,10000,100000", help="log lengths of part 3")
    parser.add_argument("--claims", type=int, default=200, help="claims at each log length")
    parser.add_argument("--parts", default="recovery,memory,claims")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.window)
        return
    if args.quick:
        args.clients, args.messages, args.away = 20, "0,10", 1.0
        args.entries, args.absents, args.claim_logs, args.claims = 500, 500, "100,1000", 20
    parts = {p for p in args.parts.split(",") if p}
    if parts - {"recovery", "memory", "claims"}:
        parser.error(f"unknown parts: {', '.join(sorted(parts))}")
    if "recovery" in parts:
        if shutil.which("node") is None:
            parser.error("the load generator needs Node.js: `node` is not on PATH")
        if not (NODE_MODULES / "socket.io-client").is_dir():
            parser.error("Node packages missing: run `npm ci --prefix benchmarks` first")
    if not 0 < args.absents <= 10_000 or not 0 < args.entries <= 100_000:
        parser.error("--absents: 1 to 10,000, --entries: 1 to 100,000 (recovery's bounds)")
    raise_open_files_limit()

    print(f"recovery: {machine()}")
    found: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    if "recovery" in parts:
        sizes = [int(m) for m in args.messages.split(",") if m]
        print(
            f"{args.clients} clients, away {args.away:g} s, missed {sizes} events of "
            f"{args.payload} characters, recovery window {args.window:g} s",
            flush=True,
        )
        results = []
        for _ in range(args.repeat):
            for messages in sizes:
                result = run_one(args.clients, messages, args)
                results.append(result)
                print(
                    f"  N={args.clients} M={messages}: {result['recovered']} recovered, "
                    f"{result['complete']} complete, the last after "
                    f"{result['complete_s'] or float('nan'):.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        found["recovery"] = results
        print(f"\n{recovery_report(results)}", flush=True)
    if "memory" in parts:
        found["memory"] = memory(args.entries, args.absents)
        print(f"\n{memory_report(found['memory'])}", flush=True)
    if "claims" in parts:
        logs = [int(n) for n in args.claim_logs.split(",") if n]
        found["claims"] = [claim_cost(n, args.claims) for n in logs]
        print(f"\n{claims_report(found['claims'])}", flush=True)
    write_json(args.json, found)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
