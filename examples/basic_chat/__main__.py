"""Run the chat: ``python -m examples.basic_chat [--host 127.0.0.1] [--port 3000]``."""

from __future__ import annotations

import argparse
import math
import sys

import uvicorn

from .app import RECOVERY, SOCKETIO_CLIENT, WS_MAX_SIZE, create_app, create_asgi_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.basic_chat",
        description="roomcast's basic chat: chat, camera and a WebRTC video call between tabs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=3000, help="port to listen on")
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="share rooms with every process using this Redis (e.g. redis://127.0.0.1:6379/0)",
    )
    parser.add_argument(
        "--recovery",
        metavar="SECONDS",
        type=float,
        help=(
            "how long a page whose connection dropped may take to come back as itself, missing "
            f"nothing (default: {RECOVERY:g}, or off with --redis); 0 turns it off"
        ),
    )
    args = parser.parse_args(argv)
    if args.recovery is None:
        args.recovery = 0.0 if args.redis else RECOVERY
    if not (math.isfinite(args.recovery) and args.recovery >= 0):
        parser.error("--recovery: expected 0 (off) or a positive number of seconds")
    if not SOCKETIO_CLIENT.is_file():
        sys.exit(
            f"{SOCKETIO_CLIENT} is missing; the page needs it. "
            "Run: npm ci --prefix examples/basic_chat"
        )
    backend = None
    if args.redis:
        from roomcast.backends.redis import RedisBackend

        backend = RedisBackend(args.redis)
    asgi_app = create_asgi_app(create_app(backend), recovery=args.recovery or None)
    print(f"basic_chat: open http://{args.host}:{args.port}/ in two browser tabs", flush=True)
    # uvicorn's defaults (websockets-sansio, per-message deflate offered) let roomcast write
    # each broadcast's one websocket frame, compressed once, straight to every receiver
    # (docs/socketio.md). A websocket message may be no larger than Engine.IO takes anyway
    # (1 MB): uvicorn's default, 16 MiB, lets a client make the server hold that much per
    # unfinished message.
    uvicorn.run(asgi_app, host=args.host, port=args.port, ws_max_size=WS_MAX_SIZE)


if __name__ == "__main__":
    main()
