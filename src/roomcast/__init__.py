"""roomcast: rooms, event routing and broadcast for real-time apps."""

from .__version__ import __version__ as __version__
from ._app import App as App
from ._exceptions import BackendRefused as BackendRefused
from ._exceptions import BackendUnavailable as BackendUnavailable
from ._exceptions import ConnectionClosed as ConnectionClosed
from ._exceptions import ConnectionRejected as ConnectionRejected
from ._exceptions import EventError as EventError
from ._exceptions import InvalidPayload as InvalidPayload
from ._exceptions import InvalidRoomName as InvalidRoomName
from ._exceptions import InvalidRoute as InvalidRoute
from ._exceptions import JoinRefused as JoinRefused
from ._exceptions import RateLimited as RateLimited
from ._exceptions import Reject as Reject
from ._exceptions import RoomcastError as RoomcastError
from ._exceptions import RouteConflict as RouteConflict
from ._exceptions import TooLarge as TooLarge
from ._exceptions import TooManyRooms as TooManyRooms
from ._exceptions import UnknownEvent as UnknownEvent
from ._history import Entry as Entry
from ._hub import CallNext as CallNext
from ._limits import Limits as Limits
from ._limits import Stats as Stats
from ._request import Ack as Ack
from ._request import Request as Request
from ._room import Room as Room
from ._routing import Router as Router
from ._transport import Transport as Transport

__all__ = [
    "Ack",
    "App",
    "BackendRefused",
    "BackendUnavailable",
    "CallNext",
    "ConnectionClosed",
    "ConnectionRejected",
    "Entry",
    "EventError",
    "InvalidPayload",
    "InvalidRoomName",
    "InvalidRoute",
    "JoinRefused",
    "Limits",
    "RateLimited",
    "Reject",
    "Request",
    "Room",
    "RoomcastError",
    "RouteConflict",
    "Router",
    "Stats",
    "TooLarge",
    "TooManyRooms",
    "Transport",
    "UnknownEvent",
    "__version__",
]
