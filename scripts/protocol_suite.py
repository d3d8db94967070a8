"""Run the official Socket.IO protocol test suite against roomcast and against raw
python-socketio, and compare what each fails.

    git clone https://github.com/socketio/socket.io-protocol /tmp/socket.io-protocol
    .venv/bin/python scripts/protocol_suite.py /tmp/socket.io-protocol/test-suite

The suite (not part of this repository) expects a server on localhost:3000 configured as its
README says: ping interval 300 ms, ping timeout 200 ms, a 1,000,000-byte max payload; on
connecting, the server emits `auth` with the client's auth data (in "/" and "/custom");
`message` is echoed back as `message-back` with every argument, and `message-with-ack` is
acknowledged with every argument. `serve raw` is that server in plain python-socketio,
`serve roomcast` the same through a roomcast app. The run needs Node and npm (the suite's own
packages are installed into its directory with `npm ci`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OPTIONS: dict[str, Any] = {
    "async_mode": "asgi",
    "ping_interval": 0.3,
    "ping_timeout": 0.2,
    "max_http_buffer_size": 1_000_000,
    "cors_allowed_origins": "*",
}


def raw_server() -> Any:
    import socketio

    sio = socketio.AsyncServer(**OPTIONS)

    @sio.on("connect")
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        await sio.emit("auth", auth, to=sid)

    @sio.on("message")
    async def message(sid: str, *args: Any) -> None:
        await sio.emit("message-back", args if len(args) != 1 else args[0], to=sid)

    @sio.on("message-with-ack")
    async def message_with_ack(sid: str, *args: Any) -> Any:
        return args

    return sio


def roomcast_server() -> Any:
    import socketio

    from roomcast import App, Request
    from roomcast.adapters.socketio import attach

    sio = socketio.AsyncServer(**OPTIONS)
    app = App()

    @app.on_connect
    async def connect(req: Request) -> None:
        await req.emit("auth", req.data)

    @app.route("message")
    async def message(req: Request) -> None:
        await req.emit("message-back", *req.args)

    @app.route("message-with-ack")
    async def message_with_ack(req: Request) -> None:
        await req.respond(*req.args)

    attach(app, sio)
    return sio


def serve(kind: str) -> None:
    import socketio
    import uvicorn

    sio = raw_server() if kind == "raw" else roomcast_server()

    @sio.on("connect", namespace="/custom")
    async def custom(sid: str, environ: Any, auth: Any) -> None:
        await sio.emit("auth", auth, to=sid, namespace="/custom")

    uvicorn.run(socketio.ASGIApp(sio), host="127.0.0.1", port=3000, log_level="error")


def failures(suite: Path, kind: str) -> tuple[int, set[str]]:
    """Run the suite against the server `kind`; return how many passed, and what failed."""
    server = subprocess.Popen([sys.executable, __file__, "serve", kind])
    try:
        time.sleep(2)
        run = subprocess.run(
            ["npx", "mocha", "--exit", "--reporter", "json", "test-suite.js"],
            cwd=suite,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        server.terminate()
        server.wait()
    report = json.loads(run.stdout)
    return report["stats"]["passes"], {failure["fullTitle"] for failure in report["failures"]}


def main() -> None:
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
        return
    suite = Path(sys.argv[1])
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=suite, check=True)
    results = {kind: failures(suite, kind) for kind in ("raw", "roomcast")}
    for kind, (passed, failed) in results.items():
        print(f"{kind}: {passed} passed, {len(failed)} failed")
    raw, roomcast = results["raw"][1], results["roomcast"][1]
    for title, tests in (
        ("roomcast fails, raw does not", roomcast - raw),
        ("both fail", raw & roomcast),
        ("raw fails, roomcast does not", raw - roomcast),
    ):
        print(f"\n{title}:")
        for test in sorted(tests):
            print(f"  {test}")
    sys.exit(1 if roomcast - raw else 0)


if __name__ == "__main__":
    main()
