"""Calling user code: handlers, hooks and guards, `async def` or plain `def`.

Whether a callable is async is decided once, when it is registered (`to_async`), seeing through
`functools.partial`, ordinary decorators (`functools.wraps` sets `__wrapped__`) and objects
with an `async def __call__`. Plain functions run in a worker thread, so that they never block
the event loop; if one returns an awaitable all the same (a decorator that returns the
coroutine of the `async def` it wraps, without `functools.wraps`), it is awaited on the loop.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

Endpoint = Callable[..., Awaitable[Any]]
"""A handler, hook or guard as the app calls it: always awaitable."""


def is_async(func: Callable[..., Any]) -> bool:
    """Whether calling `func` returns an awaitable without blocking (an `async def`, or a
    wrapper of one)."""
    seen: set[int] = set()
    while id(func) not in seen:
        seen.add(id(func))
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
        ):
            return True
        if isinstance(func, functools.partial):
            func = func.func
        elif callable(wrapped := getattr(func, "__wrapped__", None)):
            func = wrapped
        else:
            break
    return False


def to_async(func: Callable[..., Any]) -> Endpoint:
    """`func` as an async callable: awaited on the event loop if it is async, else run in a
    worker thread."""
    if inspect.iscoroutinefunction(func):
        return func  # already what the app awaits: no wrapper on the hot path
    if is_async(func):

        async def call(*args: Any) -> Any:
            result = func(*args)
            return await result if inspect.isawaitable(result) else result

    else:

        def boxed(*args: Any) -> tuple[Any]:
            return (func(*args),)  # a coroutine returned in a box: trio refuses it bare

        async def call(*args: Any) -> Any:
            (result,) = await anyio.to_thread.run_sync(boxed, *args)
            return await result if inspect.isawaitable(result) else result

    call.__wrapped__ = func  # type: ignore[attr-defined]
    return call


__all__ = ["Endpoint", "is_async", "to_async"]
