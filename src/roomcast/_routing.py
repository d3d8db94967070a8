"""Routes: which handler runs for which event name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, overload

from ._exceptions import InvalidRoute, RouteConflict
from ._handlers import Endpoint, to_async
from ._typed import typed_endpoint

if TYPE_CHECKING:
    pass

Handler: TypeAlias = Callable[..., Awaitable[Any]] | Callable[..., Any]
"""A route handler: `async def handler(req)` or plain `def handler(req)`, or with a typed
payload as its second parameter: `async def handler(req, msg: ChatMessage)`."""

Routes: TypeAlias = Mapping[str, "Handler | Routes"]
"""express.io's nested routes: `{"create": f, "update": g}`, nested as deep as needed."""

HandlerT = TypeVar("HandlerT", bound=Handler)

SEPARATOR = ":"
RESERVED_EVENTS = frozenset({"connect", "disconnect", "error"})


def join_event(prefix: str, event: str) -> str:
    """`join_event("customers", "create")` is `"customers:create"`."""
    return f"{prefix}{SEPARATOR}{event}" if prefix else event


class Router:
    """A set of routes, optionally under a prefix; include it into an app or another router.

    `Router(prefix="chat")` with a route `"send"` handles the event `"chat:send"` once
    included with `app.include_router(router)`.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._handlers: dict[str, Handler] = {}
        self._endpoints: dict[str, Endpoint] = {}

    @overload
    def route(self, event: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def route(self, event: str, handler: Handler | Routes) -> None: ...

    def route(
        self, event: str, handler: Handler | Routes | None = None
    ) -> Callable[[HandlerT], HandlerT] | None:
        """Register a handler for `event`, as a decorator or directly.

        `route("customers", {"create": f, "update": g})` registers `customers:create` and
        `customers:update`.
        """
        if handler is None:

            def decorator(func: HandlerT) -> HandlerT:
                self._add(event, func)
                return func

            return decorator
        if isinstance(handler, Mapping):
            for name, sub in handler.items():
                self.route(join_event(event, name), sub)
        else:
            self._add(event, handler)
        return None

    def include_router(self, router: Router) -> None:
        """Add every route of `router`, under its prefix."""
        for event, handler in router._handlers.items():
            self._add(join_event(router.prefix, event), handler, router._endpoints[event])

    def handler(self, event: str) -> Handler | None:
        """The handler registered for the event name `event`, or `None`.

        `event` is the name as registered here: a router's own prefix is applied only when it
        is included into another router or the app.
        """
        return self._handlers.get(event)

    def endpoint(self, event: str) -> Endpoint | None:
        """The handler of `event` as the app calls it (always awaitable), or `None`."""
        return self._endpoints.get(event)

    @property
    def events(self) -> frozenset[str]:
        """Every event name this router handles (before its own prefix is applied)."""
        return frozenset(self._handlers)

    def _add(self, event: str, handler: Handler, endpoint: Endpoint | None = None) -> None:
        if not isinstance(event, str) or not event:
            raise InvalidRoute("An event name must be a non-empty string.")
        if join_event(self.prefix, event) in RESERVED_EVENTS:
            raise InvalidRoute(
                f"{event!r} is reserved for the connection's life and errors; hooks for "
                "connect and disconnect are registered with on_connect and on_disconnect."
            )
        if not callable(handler):
            raise InvalidRoute(f"The handler for {event!r} is not callable: {handler!r}")
        if event in self._handlers:
            raise RouteConflict(f"The event {event!r} already has a handler.")
        self._handlers[event] = handler
        if endpoint is None:
            endpoint = typed_endpoint(handler) or to_async(handler)
        self._endpoints[event] = endpoint
