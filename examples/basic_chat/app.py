"""The express.io tutorial's chat, camera and video-call app, served by roomcast.

Events (client → server, then what the server sends back):

- ``ready``  a room name, or ``{chat_room, signal_room, files_room, name?}``: join them;
  every member of the chat room (the sender too) gets ``announce``. With a ``name``, the
  sender is also made present in each of them (roomcast's presence, keyed by its sid, with
  meta ``{name}``): it gets ``presence_state``, and every member ``presence_diff``.
- ``name``   ``{name}``: show the sender under this name in every room it is in (an update
  if it was present there, a first track if ``ready`` came without a name).
- ``send``   ``{room, author, message, picture?}``: every member of the room (the sender too)
  gets ``message`` with ``{message, author}``, plus ``picture`` (a small ``data:image/...``
  URL, the author's profile picture) when the sender had one.
- ``signal`` ``{type, message, room}``: the other members of the room get
  ``signaling_message`` with ``{type, message}``; this is the WebRTC call's signalling.
- ``files``  ``{filename, filesize, room}``: the other members of the room get ``files``.

A payload that does not fit gets the error of roomcast's contract (``invalid_payload``).

With connection-state recovery on (``RECOVERY``; the command's default), a page whose
connection drops and comes back within the window keeps its sid and rooms and gets every
event sent to it meanwhile, but not its presence: it sends ``name`` again, not ``ready``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import socketio
from prometheus_client import CollectorRegistry, make_asgi_app

from roomcast import App, InvalidPayload, Request
from roomcast.adapters.socketio import BodyLimit, attach
from roomcast.backends import Backend
from roomcast.metrics import instrument

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
SOCKETIO_CLIENT = HERE / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"

# python-socketio serves these itself: the page, its assets, and the official socket.io client
# from node_modules (installed by `npm ci`, never fetched from a CDN).
STATIC_FILES = {
    "/": str(STATIC / "index.html"),
    "/static": f"{STATIC}/",
    "/vendor/socket.io.min.js": str(SOCKETIO_CLIENT),
}

MAX_TEXT = 2_000  # characters in a chat message, a name, a file name
MAX_SIGNAL = 64 * 1024  # an SDP offer or answer is a few kilobytes
MAX_PICTURE = 64 * 1024  # a 96x72 JPEG as a data: URL is 3-6 KB
SIGNAL_TYPES = frozenset({"user_here", "SDP", "ice candidate"})
PICTURE = re.compile(r"data:image/(jpeg|png|webp);base64,[A-Za-z0-9+/]+={0,2}")


def field(data: Any, name: str, kind: type = str, *, limit: int = MAX_TEXT) -> Any:
    """Return ``data[name]`` if it is a ``kind`` that fits; raise ``InvalidPayload`` if not.

    Strings must be non-empty (not only blanks) and at most ``limit`` characters;
    integers must be non-negative.
    """
    if not isinstance(data, dict):
        raise InvalidPayload(f"expected an object with {name!r}, got {type(data).__name__}")
    if name not in data:
        raise InvalidPayload(f"{name!r} is missing")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidPayload(f"{name!r} must be of type {kind.__name__}")
    if isinstance(value, str) and not value.strip():
        raise InvalidPayload(f"{name!r} is empty")
    if isinstance(value, str) and len(value) > limit:
        raise InvalidPayload(f"{name!r} is longer than {limit} characters")
    if isinstance(value, int) and value < 0:
        raise InvalidPayload(f"{name!r} is negative")
    return value


RECOVERY = 120.0
"""Seconds within which a page whose connection dropped gets back its connection, its rooms
and every event it missed (Socket.IO's connection-state recovery; docs/recovery.md)."""

WS_MAX_SIZE = 1024 * 1024
"""The largest websocket message the server takes, in bytes: just over Engine.IO's own bound
on one packet (1 MB), instead of uvicorn's default of 16 MiB."""


def create_app(backend: Backend | None = None) -> App:
    """Return a new roomcast app with the chat's routes (rooms in memory unless `backend`)."""
    app = App(backend=backend)

    @app.route("ready")
    async def ready(req: Request) -> None:
        name = None
        if isinstance(req.data, dict):
            chat_room = field(req.data, "chat_room")
            rooms = [chat_room, field(req.data, "signal_room"), field(req.data, "files_room")]
            if req.data.get("name") is not None:
                name = field(req.data, "name")
        else:
            chat_room = req.data
            rooms = [chat_room]
        for room in rooms:
            await req.join(room)
        if name is not None:  # who is here: the room's members see this name
            for room in rooms:
                await req.track(room, {"name": name})
        await app.room(chat_room).broadcast(
            "announce", {"message": f"New client in the {chat_room} room."}
        )

    @app.route("name")
    async def set_name(req: Request) -> None:
        new_name = field(req.data, "name")
        for room in sorted(req.rooms):  # the rooms `ready` joined
            await req.track(room, {"name": new_name})

    @app.route("send")
    async def send(req: Request) -> None:
        d = req.data
        message = {"message": field(d, "message"), "author": field(d, "author")}
        if isinstance(d, dict) and d.get("picture") is not None:
            message["picture"] = field(d, "picture", limit=MAX_PICTURE)
            if not PICTURE.fullmatch(message["picture"]):
                raise InvalidPayload("'picture' must be a base64 data:image/ URL")
        await app.room(field(d, "room")).broadcast("message", message)

    @app.route("signal")
    async def signal(req: Request) -> None:
        d = req.data
        kind, message = field(d, "type"), field(d, "message", limit=MAX_SIGNAL)
        if kind not in SIGNAL_TYPES:
            raise InvalidPayload(f"'type' must be one of: {', '.join(sorted(SIGNAL_TYPES))}")
        await req.room(field(d, "room")).broadcast(
            "signaling_message", {"type": kind, "message": message}
        )

    @app.route("files")
    async def files(req: Request) -> None:
        d = req.data
        await req.room(field(d, "room")).broadcast(
            "files", {"filename": field(d, "filename"), "filesize": field(d, "filesize", int)}
        )

    return app


def create_asgi_app(app: App, *, recovery: float | None = None) -> BodyLimit:
    """Attach ``app`` to a new python-socketio server; return the ASGI app serving it all.

    The app is started and stopped with the server (its lifespan), as a backend such as
    Redis needs. HTTP bodies (long-polling POSTs) over Engine.IO's 1 MB payload bound are
    refused with 413 before they are read.

    ``recovery``: seconds within which a client whose connection dropped gets it back, with
    what it missed (``None``: off). The example's command turns it on (`RECOVERY`); it is off
    here by default because every event then carries its offset as one more argument, which
    a python-socketio client's handlers receive too (the page's JavaScript ignores it).

    ``/metrics`` serves the app's Prometheus metrics (``roomcast.metrics``).
    """
    sio = socketio.AsyncServer(async_mode="asgi")
    attach(app, sio, recovery=recovery)
    registry = CollectorRegistry()  # the app's own: several apps may run in one process
    instrument(app, registry)
    metrics = make_asgi_app(registry)

    async def other(scope: Any, receive: Any, send: Any) -> None:
        """What is neither Socket.IO nor a static file: the metrics, else 404."""
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await metrics(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"Not found"})

    return BodyLimit(
        socketio.ASGIApp(
            sio,
            other_asgi_app=other,
            static_files=STATIC_FILES,
            on_startup=app.start,
            on_shutdown=app.stop,
        ),
        max_bytes=sio.eio.max_http_buffer_size,
    )


app = create_app()
asgi_app = create_asgi_app(app, recovery=RECOVERY)
