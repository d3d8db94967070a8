"""Helpers for tests that talk to a real server over the network (asyncio only)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import socketio
import socketio.exceptions
import uvicorn

from roomcast import ConnectionRejected
from roomcast.testing import Message


@asynccontextmanager
async def serve(asgi_app: Any) -> AsyncIterator[str]:
    """Run `asgi_app` under uvicorn on a free 127.0.0.1 port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(asgi_app, log_level="warning", lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
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

    def __init__(self, url: str, auth: Any = None) -> None:
        self.url = url
        self.auth = auth
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: asyncio.Queue[Message] = asyncio.Queue()
        self.sio.on("*", self._record)
        self.connect_errors: list[Any] = []
        self.sio.on("connect_error", self.connect_errors.append)

    async def _record(self, event: str, *args: Any) -> None:
        data = None if not args else args[0] if len(args) == 1 else list(args)
        await self.received.put(Message(event, data))

    async def __aenter__(self) -> Client:
        try:
            await self.sio.connect(self.url, auth=self.auth, transports=["websocket"])
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

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data)

    async def call(self, event: str, data: Any = None, *, timeout: float = 5.0) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def receive(self, *, timeout: float = 5.0) -> Message:
        return await asyncio.wait_for(self.received.get(), timeout)


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
