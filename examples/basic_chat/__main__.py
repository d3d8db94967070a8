"""Run the chat: ``python -m examples.basic_chat [--host 127.0.0.1] [--port 3000]``."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from .app import SOCKETIO_CLIENT, asgi_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.basic_chat",
        description="roomcast's basic chat: chat, camera and a WebRTC video call between tabs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=3000, help="port to listen on")
    args = parser.parse_args(argv)
    if not SOCKETIO_CLIENT.is_file():
        sys.exit(
            f"{SOCKETIO_CLIENT} is missing; the page needs it. "
            "Run: npm ci --prefix examples/basic_chat"
        )
    print(f"basic_chat: open http://{args.host}:{args.port}/ in two browser tabs", flush=True)
    uvicorn.run(asgi_app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
