"""Helpers for tests that talk to a real server over the network (asyncio only)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import socketio
import socketio.exceptions
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from roomcast import ConnectionRejected
from roomcast.testing import Message


@asynccontextmanager
async def serve(
    asgi_app: Any, ws: str = "websockets-sansio", **options: Any
) -> AsyncIterator[str]:
    """Run `asgi_app` under uvicorn (websockets with uvicorn's `ws` implementation, per-message
    deflate offered as by default; `options` go to `uvicorn.Config`) on a free 127.0.0.1 port;
    yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(asgi_app, log_level="warning", lifespan="on", ws=ws, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        with anyio.fail_after(10):  # nothing signals the start: poll for it
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class Client:
    """A real python-socketio client that records what it receives."""

    def __init__(
        self, url: str, auth: Any = None, transports: tuple[str, ...] = ("websocket",)
    ) -> None:
        self.url = url
        self.auth = auth
        self.transports = list(transports)
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: asyncio.Queue[Message] = asyncio.Queue()
        self.sio.on("*", self._record)
        self.connect_errors: list[Any] = []
        self.sio.on("connect_error", self.connect_errors.append)

    async def _record(self, event: str, *args: Any) -> None:
        data = None if not args else args[0] if len(args) == 1 else list(args)
        await self.received.put(Message(event, data, args))

    async def __aenter__(self) -> Client:
        try:
            await self.sio.connect(self.url, auth=self.auth, transports=self.transports)
        except socketio.exceptions.ConnectionError as exc:
            # The reason reaches the client as the data of its `connect_error` event.
            raise ConnectionRejected(f"refused: {self.connect_errors!r}") from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    async def disconnect(self) -> None:
        await self.sio.disconnect()

    @property
    def sid(self) -> str:
        sid = self.sio.get_sid()
        assert sid is not None
        return str(sid)

    async def emit(self, event: str, data: Any = None, *more: Any) -> None:
        # python-socketio sends a tuple as several arguments.
        await self.sio.emit(event, (data, *more) if more else data)

    async def call(self, event: str, data: Any = None, *more: Any, timeout: float = 5.0) -> Any:
        answer = await self.sio.call(event, (data, *more) if more else data, timeout=timeout)
        # Several values come as a tuple; as a list, they compare as TestClient's do.
        return list(answer) if isinstance(answer, tuple) else answer

    async def receive(self, *, timeout: float = 5.0) -> Message:
        return await asyncio.wait_for(self.received.get(), timeout)


class RawClient:
    """A Socket.IO client over a bare websocket (the `websockets` package), connected to the
    namespace "/": it sees every packet in the order it arrives, events and acknowledgements
    alike, and answers Engine.IO pings itself. `compression="deflate"` offers per-message
    deflate; `options` go to `websockets.asyncio.client.connect`."""

    def __init__(self, url: str, compression: str | None = None, **options: Any) -> None:
        self.url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.options = {"ping_interval": None, "max_size": None, **options}
        self.options["compression"] = compression
        self.sid = ""
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> RawClient:
        self._ws = await connect(self.url, **self.options)
        assert str(await self.ws.recv()).startswith("0")  # Engine.IO open
        await self.ws.send("40")  # Socket.IO connect to "/"
        connected = str(await self.ws.recv())
        assert connected.startswith("40"), connected
        self.sid = json.loads(connected[2:])["sid"]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.ws.close()

    @property
    def ws(self) -> ClientConnection:
        assert self._ws is not None
        return self._ws

    async def emit(self, event: str, data: Any = None, ack_id: int | None = None) -> None:
        args = [event] if data is None else [event, data]
        await self.ws.send(f"42{'' if ack_id is None else ack_id}{json.dumps(args)}")

    async def receive(self, *, timeout: float = 5.0) -> tuple[str, Any, Any]:
        """The next event, `("event", name, data)`, or acknowledgement, `("ack", id, data)`."""
        while True:
            text = str(await asyncio.wait_for(self.ws.recv(), timeout))
            if text == "2":
                await self.ws.send("3")
            elif text.startswith("42"):
                args = json.loads(text[2:])
                return "event", args[0], args[1] if len(args) > 1 else None
            elif text.startswith("43"):
                end = 2
                while text[end].isdigit():
                    end += 1
                args = json.loads(text[end:])
                return "ack", int(text[2:end]), args[0] if args else None
            else:
                raise AssertionError(f"unexpected packet {text!r}")

    async def call(self, event: str, data: Any = None, *, timeout: float = 5.0) -> Any:
        """Emit `event` asking for an acknowledgement, and return it (nothing else may come
        in meanwhile)."""
        await self.emit(event, data, ack_id=0)
        kind, ack_id, payload = await self.receive(timeout=timeout)
        assert (kind, ack_id) == ("ack", 0)
        return payload


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def run_example(log_path: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run the example chat with its README command (plus `args`) on a free port in another
    process; yield its base URL and the process. Its output goes to `log_path`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "examples.basic_chat", "--port", str(port), *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the example exited:\n{log_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"{url}/", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the example did not answer on {url}:\n{log_path.read_text()}"
                        ) from None
                    time.sleep(0.1)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
