"""The Python servers of the fanout benchmark; one per process, started by `benchmarks.fanout`.

`python -m benchmarks.fanout_server --kind roomcast|python-socketio [--front ...]` listens on a
free 127.0.0.1 port and prints `{"port": N}` on one line once it accepts connections. Both
kinds serve the same two routes:

- `join` (a room name, acknowledged with `"ok"`): the sender joins the room;
- `send` (any payload): `message` with that payload goes to every member of room `chat`,
  the sender included.

Fronts: `uvicorn` (ws="websockets-sansio"), `uvicorn-websockets`, `uvicorn-wsproto` (other
`ws=` implementations of uvicorn), `aiohttp` (python-engineio's aiohttp mode). Per-message
deflate is off everywhere, as in Node's socket.io by default.
"""

from __future__ import annotations

import argparse
import asyncio
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
}
FRONTS = [*UVICORN_WS, "aiohttp"]
KINDS = ["roomcast", "python-socketio"]


def build(kind: str, async_mode: str) -> socketio.AsyncServer:
    """A python-socketio server with the benchmark's two routes, done the `kind` way."""
    sio = socketio.AsyncServer(async_mode=async_mode)
    if kind == "roomcast":
        from roomcast import Request
        from roomcast.adapters.socketio import attach

        app = roomcast_app()

        @app.route("join")
        async def join(req: Request) -> str:
            await req.join(req.data)
            return "ok"

        @app.route("send")
        async def send(req: Request) -> None:
            await app.room("chat").broadcast("message", req.data)

        attach(app, sio)
    elif kind == "python-socketio":

        @sio.on("join")
        async def join_room(sid: str, room: str) -> str:
            await sio.enter_room(sid, room)
            return "ok"

        @sio.on("send")
        async def send_message(sid: str, data: Any) -> None:
            await sio.emit("message", data, to="chat")

    else:
        raise ValueError(f"unknown server kind {kind!r}")
    return sio


def roomcast_app() -> Any:
    """A roomcast `App` without the per-connection rate limit: the benchmark's one sender
    emits thousands of events a second, far over the default. The other limits stay."""
    from roomcast import App, Limits

    return App(limits=Limits(rate=None))


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def announce(sock: socket.socket) -> None:
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)


async def serve_uvicorn(kind: str, ws: str) -> None:
    import uvicorn

    sock = listening_socket()
    config = uvicorn.Config(
        socketio.ASGIApp(build(kind, "asgi")),
        log_level="warning",
        lifespan="off",
        http="h11",
        ws=ws,
        ws_per_message_deflate=False,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    announce(sock)
    await task  # uvicorn handles SIGINT/SIGTERM itself


async def serve_aiohttp(kind: str) -> None:
    from aiohttp import web

    sock = listening_socket()
    app = web.Application()
    build(kind, "aiohttp").attach(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    announce(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default="roomcast")
    parser.add_argument("--front", choices=FRONTS, default="uvicorn")
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="event loop"
    )
    args = parser.parse_args(argv)
    raise_open_files_limit()
    if args.front == "aiohttp":
        coro = serve_aiohttp(args.kind)
    else:
        coro = serve_uvicorn(args.kind, UVICORN_WS[args.front])
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
