"""`BodyLimit`: an ASGI middleware that refuses an HTTP request body over a size, early.

python-engineio's ASGI driver reads a long-polling POST's whole body before it looks at its
size, so a client can make the server hold any amount of data for as long as it sends it.
`BodyLimit` answers `413 Payload Too Large` as soon as it knows: at once when the request
says its `Content-Length`, or when the body read so far passes the limit; the app behind it
never sees the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY = 1_000_000
"""python-engineio's own bound on one HTTP payload (`max_http_buffer_size`)."""


class BodyLimit:
    """Serve `app`, refusing HTTP request bodies over `max_bytes` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await _too_large(send)
            return
        read = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal read, refused
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes and not refused:
                    refused = True
                    await _too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # once refused, what the app answers goes nowhere
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": b"Payload Too Large"})


__all__ = ["DEFAULT_MAX_BODY", "BodyLimit"]
