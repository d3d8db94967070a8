"""What a Socket.IO client sends, checked before python-socketio keeps or parses it.

python-socketio keeps every binary attachment an event announces until it has them all, and a
packet it cannot parse raises inside its Engine.IO message handler, where python-engineio logs
the traceback, for every such packet, and answers nothing. `Inbound` stands in front of that
handler, for one server:

- an event that announces more than `Limits.max_attachments` attachments, or whose
  attachments add up to more than `Limits.max_payload` bytes, closes its connection as soon as
  that is seen, and what python-socketio held for it is dropped;
- a packet that cannot be parsed, or an event that is not a list whose first item is a string,
  is answered with `invalid_payload` (in the acknowledgement when the packet carries an ack id,
  else as the event `"error"`), logged once per connection at most (and no more than a few
  times a second in all), and counted; at `Limits.max_malformed` of them the connection is
  closed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from .._limits import Limits, Stats, TokenBucket
from . import _internals

logger = logging.getLogger("roomcast")

MALFORMED = "Malformed packet."
_HEADER = re.compile(r"([0-6])(?:(\d+)-)?(?:(/[^,]*),)?(\d+)?")
"""A Socket.IO packet's header: type, attachments, namespace, ack id."""
_EVENT_TYPES = frozenset("25")  # EVENT, BINARY_EVENT
_BINARY_TYPES = frozenset("56")  # BINARY_EVENT, BINARY_ACK


class _Client:
    """What is known of one Engine.IO connection's input."""

    __slots__ = ("attachment_bytes", "logged", "malformed", "refused")

    def __init__(self) -> None:
        self.attachment_bytes = 0
        self.malformed = 0
        self.logged = False
        self.refused = False
        """Closed for what it sent: whatever still comes from it is dropped unread."""


class Inbound:
    """The checks on what the clients of one python-socketio server send (see the module)."""

    def __init__(
        self,
        sio: Any,
        limits: Limits,
        stats: Stats,
        reply: Callable[[str, str, int | None, dict[str, Any]], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self.sio = sio
        self.limits = limits
        self.stats = stats
        self.reply = reply
        """`reply(eio_sid, namespace, ack_id, error)`: tell the client its packet failed."""
        self.clock = clock
        self._clients: dict[str, _Client] = {}
        self._log_bucket: TokenBucket | None = None  # made on first use, in the event loop

    def install(self) -> None:
        """Stand in front of python-socketio's Engine.IO message handler, and forget each
        connection when it goes."""
        _internals.wrap_engineio_handler(self.sio, "message", self._guard_messages)
        _internals.wrap_engineio_handler(self.sio, "disconnect", self._forget_on_disconnect)

    def _guard_messages(
        self, handle: Callable[[str, Any], Awaitable[None]]
    ) -> Callable[[str, Any], Awaitable[None]]:
        async def message(eio_sid: str, data: Any) -> None:
            client = self._clients.get(eio_sid)
            if client is not None and client.refused:
                return
            if not await self._admit(eio_sid, data):
                return
            try:
                await handle(eio_sid, data)
            except Exception as exc:  # python-socketio could not parse it
                await self.malformed(eio_sid, data, exc)

        return message

    def _forget_on_disconnect(
        self, handle: Callable[..., Awaitable[None]]
    ) -> Callable[..., Awaitable[None]]:
        async def disconnect(eio_sid: str, *args: Any) -> None:
            self._clients.pop(eio_sid, None)
            await handle(eio_sid, *args)

        return disconnect

    async def _admit(self, eio_sid: str, data: Any) -> bool:
        """Whether `data` may go on to python-socketio; refuse the connection if not."""
        if _internals.pending_binary(self.sio, eio_sid) is not None:
            client = self._client(eio_sid)
            client.attachment_bytes += len(data) if isinstance(data, bytes | str) else 0
            if (
                self.limits.max_payload is not None
                and client.attachment_bytes > self.limits.max_payload
            ):
                await self.refuse(eio_sid, "its binary attachments are too large")
                return False
        elif isinstance(data, str) and data[:1] in _BINARY_TYPES:
            header = _HEADER.match(data)
            announced = header.group(2) if header else None
            limit = self.limits.max_attachments
            if announced is not None and limit is not None and int(announced) > limit:
                await self.refuse(eio_sid, f"an event announced {announced} attachments")
                return False
            self._client(eio_sid).attachment_bytes = 0
        return True

    async def malformed(
        self, eio_sid: str, data: Any, error: BaseException | str, ack_id: int | None = None
    ) -> None:
        """Answer, count and maybe log a packet from `eio_sid` that is not a valid event;
        close the connection at `Limits.max_malformed` of them."""
        self.stats.malformed += 1
        client = self._client(eio_sid)
        client.malformed += 1
        if not client.logged and self._may_log():
            client.logged = True
            logger.warning(
                "A malformed packet from %s (%s): %.80r; further ones from it are not logged.",
                eio_sid,
                error if isinstance(error, str) else type(error).__name__,
                data,
            )
        namespace = "/"
        if ack_id is None and isinstance(data, str):
            header = _HEADER.match(data)
            if header is not None:
                namespace = header.group(3) or "/"
                if header.group(1) in _EVENT_TYPES and header.group(4) is not None:
                    ack_id = int(header.group(4)[:16])
        error_payload = {"code": "invalid_payload", "message": MALFORMED}
        limit = self.limits.max_malformed
        if limit is not None and client.malformed >= limit:
            await self.refuse(eio_sid, f"it sent {client.malformed} malformed packets")
            return
        await self.reply(eio_sid, namespace, ack_id, error_payload)

    async def refuse(self, eio_sid: str, why: str) -> None:
        """Close the connection `eio_sid` at once for what it sent, dropping what
        python-socketio holds for it."""
        _internals.forget_binary(self.sio, eio_sid)
        client = self._client(eio_sid)
        if client.refused:
            return
        client.refused = True
        self.stats.refused_connections += 1
        if self._may_log():
            logger.warning("Closed the connection %s: %s.", eio_sid, why)
        socket = _internals.engineio_socket_of(self.sio, eio_sid)
        if socket is not None:
            await _internals.close_socket(socket, "refused")
            _internals.end_writer(socket)

    def _may_log(self) -> bool:
        """Whether one more warning fits: a few a second at most, in all."""
        now = self.clock()
        if self._log_bucket is None:
            self._log_bucket = TokenBucket(rate=2.0, burst=20, now=now)
        return self._log_bucket.take(now)

    def _client(self, eio_sid: str) -> _Client:
        client = self._clients.get(eio_sid)
        if client is None:
            client = self._clients[eio_sid] = _Client()
        return client


__all__ = ["MALFORMED", "Inbound"]
