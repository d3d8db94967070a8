"""The Python servers of the fanout benchmark; one per process, started by `benchmarks.fanout`.

`python -m benchmarks.fanout_server --kind roomcast|python-socketio [--front ...]` listens on a
free 127.0.0.1 port and prints `{"port": N}` on one line once it accepts connections. Both
kinds serve the same two routes:

- `join` (a room name, acknowledged with `"ok"`): the sender joins the room;
- `send` (any payload): `message` with that payload goes to every member of room `chat`,
  the sender included.

Fronts: `uvicorn` (ws="websockets-sansio"), `uvicorn-websockets`, `uvicorn-wsproto` (other
`ws=` implementations of uvicorn), `aiohttp` (python-engineio's aiohttp mode): all with
per-message deflate off, as in Node's socket.io by default. `uvicorn-deflate` is uvicorn with
its own defaults for websockets, the way an app is often deployed: `ws="auto"` (which picks
websockets-sansio when websockets is installed) and `ws_per_message_deflate=True`, so that a
client offering per-message deflate gets it; everything else as `uvicorn`.

`--redis URL --prefix P` (roomcast only) gives the app a `RedisBackend(URL, prefix=P)`, started
and stopped by the ASGI lifespan (`socketio.ASGIApp(sio, on_startup=app.start,
on_shutdown=app.stop)`; with aiohttp, around the server's life): several such processes with
the same prefix share room `chat`.

`--history` (roomcast only) makes the app keep room `chat`'s broadcasts
(`app.keep_history("chat", size=100)`, the default ttl): each broadcast is then also appended
to the room's history in the backend (in memory, or a Redis stream with `--redis`), after its
local delivery. `benchmarks.fanout` runs it as the server `roomcast+history`.

On SIGUSR1 the server prints one line `{"probe": {...}}`: its open Engine.IO connections (and
the closed ones it still holds, their websocket not yet gone), the packets waiting in their
queues (in all, and the longest queue) and, for roomcast, `app.stats`, the transport's
`direct_writes`, whether Redis is reachable (`redis_available`) and, with `--history`, how many
entries room `chat`'s history holds (`history_kept`, read from the backend).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import socket
import sys
from typing import Any

import socketio

from ._common import raise_open_files_limit

UVICORN_WS = {
    "uvicorn": "websockets-sansio",
    "uvicorn-websockets": "websockets",
    "uvicorn-wsproto": "wsproto",
    "uvicorn-deflate": "auto",
}
DEFLATE_FRONTS = frozenset({"uvicorn-deflate"})  # per-message deflate on (uvicorn's default)
FRONTS = [*UVICORN_WS, "aiohttp"]
KINDS = ["roomcast", "python-socketio"]


@dataclasses.dataclass
class Built:
    """A server of the benchmark: the python-socketio server, and roomcast's parts if any."""

    sio: socketio.AsyncServer
    app: Any = None
    transport: Any = None
    history: bool = False
    _probing: Any = dataclasses.field(default=None, repr=False)

    def probe(self) -> dict[str, Any]:
        """What the server holds now (see the module docstring)."""
        sockets = list(self.sio.eio.sockets.values())
        queues = [s.queue.qsize() for s in sockets]
        found: dict[str, Any] = {
            "connections": sum(1 for s in sockets if not s.closed),
            "closed_held": sum(1 for s in sockets if s.closed),
            "queued": sum(queues),
            "largest_queue": max(queues, default=0),
        }
        if self.app is not None:
            found["stats"] = dataclasses.asdict(self.app.stats)
            found["direct_writes"] = getattr(self.transport, "direct_writes", None)
            found["redis_available"] = getattr(self.app.backend, "available", None)
        return found

    def print_probe(self) -> None:
        if not self.history:
            print(json.dumps({"probe": self.probe()}), flush=True)
            return
        # The history is read from the backend (a Redis round trip with `--redis`): in a task.
        task = asyncio.get_running_loop().create_task(self._print_probe_with_history())
        self._probing = task  # (a strong reference until it is done)

    async def _print_probe_with_history(self) -> None:
        found = self.probe()
        try:
            found["history_kept"] = len(await self.app.room("chat").history())
        except Exception as exc:  # the probe says so rather than not answering
            found["history_kept"] = None
            found["history_error"] = repr(exc)
        print(json.dumps({"probe": found}), flush=True)


def build(
    kind: str,
    async_mode: str,
    redis: str | None = None,
    prefix: str = "roomcast:",
    *,
    history: bool = False,
) -> Built:
    """A python-socketio server with the benchmark's two routes, done the `kind` way; with
    `redis`, roomcast's rooms live in that Redis under `prefix`; with `history`, roomcast
    keeps room `chat`'s broadcasts."""
    sio = socketio.AsyncServer(async_mode=async_mode)
    if redis is not None and kind != "roomcast":
        raise ValueError("--redis applies to the roomcast kind only")
    if history and kind != "roomcast":
        raise ValueError("--history applies to the roomcast kind only")
    if kind == "roomcast":
        from roomcast import Request
        from roomcast.adapters.socketio import attach

        app = roomcast_app(redis, prefix)
        if history:
            app.keep_history("chat", size=100)

        @app.route("join")
        async def join(req: Request) -> str:
            await req.join(req.data)
            return "ok"

        @app.route("send")
        async def send(req: Request) -> None:
            await app.room("chat").broadcast("message", req.data)

        return Built(sio, app, attach(app, sio), history=history)
    if kind == "python-socketio":

        @sio.on("join")
        async def join_room(sid: str, room: str) -> str:
            await sio.enter_room(sid, room)
            return "ok"

        @sio.on("send")
        async def send_message(sid: str, data: Any) -> None:
            await sio.emit("message", data, to="chat")

        return Built(sio)
    raise ValueError(f"unknown server kind {kind!r}")


def roomcast_app(redis: str | None = None, prefix: str = "roomcast:") -> Any:
    """A roomcast `App` without the per-connection rate limit: the benchmark's one sender
    emits thousands of events a second, far over the default. The other limits stay
    (`max_queued=1000` with `slow_consumer="disconnect"` among them). With `redis`, the
    rooms live in Redis (`RedisBackend`), under `prefix`."""
    from roomcast import App, Limits

    if redis is None:
        return App(limits=Limits(rate=None))
    from roomcast.backends.redis import RedisBackend

    return App(backend=RedisBackend(redis, prefix=prefix), limits=Limits(rate=None))


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def announce(sock: socket.socket) -> None:
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)


def on_probe_signal(built: Built) -> None:
    """Print the probe line on SIGUSR1 (uvicorn handles only SIGINT and SIGTERM)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, built.print_probe)


async def serve_uvicorn(built: Built, ws: str, *, deflate: bool = False) -> None:
    import uvicorn

    sock = listening_socket()
    app = built.app
    started = app is not None
    if started:  # the app's backend runs inside the ASGI lifespan
        asgi = socketio.ASGIApp(built.sio, on_startup=app.start, on_shutdown=app.stop)
    else:
        asgi = socketio.ASGIApp(built.sio)
    config = uvicorn.Config(
        asgi,
        log_level="warning",
        lifespan="on" if started else "off",
        http="h11",
        ws=ws,
        ws_per_message_deflate=deflate,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    on_probe_signal(built)
    announce(sock)
    await task  # uvicorn handles SIGINT/SIGTERM itself


async def serve_aiohttp(built: Built) -> None:
    from aiohttp import web

    sock = listening_socket()
    app = web.Application()
    built.sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    started = built.app is not None
    if started:
        await built.app.start()
    await runner.setup()
    await web.SockSite(runner, sock).start()
    on_probe_signal(built)
    announce(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    if started:
        await built.app.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default="roomcast")
    parser.add_argument("--front", choices=FRONTS, default="uvicorn")
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="event loop"
    )
    parser.add_argument("--redis", metavar="URL", help="roomcast only: a RedisBackend at URL")
    parser.add_argument("--prefix", default="roomcast:", help="the RedisBackend's prefix")
    parser.add_argument(
        "--history", action="store_true", help="roomcast only: keep room chat's broadcasts"
    )
    args = parser.parse_args(argv)
    if args.redis and args.kind != "roomcast":
        parser.error("--redis applies to --kind roomcast only")
    if args.history and args.kind != "roomcast":
        parser.error("--history applies to --kind roomcast only")
    raise_open_files_limit()
    built = build(
        args.kind,
        "aiohttp" if args.front == "aiohttp" else "asgi",
        args.redis,
        args.prefix,
        history=args.history,
    )
    if args.front == "aiohttp":
        coro = serve_aiohttp(built)
    else:
        coro = serve_uvicorn(built, UVICORN_WS[args.front], deflate=args.front in DEFLATE_FRONTS)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
