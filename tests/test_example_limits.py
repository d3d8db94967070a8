"""The example as its one command serves it: what a client sends is bounded before it is kept."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from examples.basic_chat.app import WS_MAX_SIZE

from .servers import run_example
from .test_adapter_asgi import request


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("example")) / "server.log"
    with run_example(log) as (url, _):
        yield url


async def send_quietly(ws: ClientConnection, message: AsyncIterator[str]) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send(message)


async def read_until_closed(ws: ClientConnection) -> None:
    while True:
        await ws.recv()


async def test_an_unfinished_websocket_message_is_cut_at_the_limit(example: str) -> None:
    ws_url = example.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with connect(ws_url, max_size=None) as ws:
        assert str(await ws.recv()).startswith("0")

        async def fragments() -> AsyncIterator[str]:
            for _ in range(4):  # 4 x 512 KiB: past 1 MiB, and never finished
                yield "4" + "x" * (512 * 1024)
            await anyio.sleep_forever()

        # Under uvicorn's default (16 MiB) the server would wait for the rest, and this would
        # time out; past WS_MAX_SIZE it drops the connection instead.
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_quietly, ws, fragments())
            with anyio.fail_after(10), pytest.raises(ConnectionClosed):
                await read_until_closed(ws)
            tg.cancel_scope.cancel()
    assert WS_MAX_SIZE == 1024 * 1024


async def test_a_post_over_the_limit_gets_413_at_once(example: str) -> None:
    head = (
        b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 50000000\r\n\r\n"
    )
    assert await request(example, head, []) == b"HTTP/1.1 413"
