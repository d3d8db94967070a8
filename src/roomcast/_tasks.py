"""Supervised background work: a task that fails is logged and started again, so that no
single bad message can end the work others depend on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

logger = logging.getLogger("roomcast")

FIRST_BACKOFF = 0.05
MAX_BACKOFF = 5.0


class Supervisor:
    """Runs functions for as long as their task lives, restarting each when it fails.

    `restarts` counts the failures seen; `failing` names the functions whose last run failed
    and that have not run for `MAX_BACKOFF` seconds since without failing again.
    """

    __slots__ = ("failing", "name", "restarts")

    def __init__(self, name: str) -> None:
        self.name = name
        self.restarts = 0
        self.failing: set[str] = set()

    async def run(self, what: str, func: Callable[[], Awaitable[None]]) -> None:
        """Await `func()` until it returns; when it raises, log the traceback and start it
        again after a backoff that doubles up to `MAX_BACKOFF` seconds."""
        backoff = FIRST_BACKOFF
        while True:
            started = anyio.current_time()
            try:
                await func()
                self.failing.discard(what)
                return
            except Exception:
                self.restarts += 1
                self.failing.add(what)
                logger.exception("%s: the %s failed; restarting it.", self.name, what)
            if anyio.current_time() - started > MAX_BACKOFF:
                backoff = FIRST_BACKOFF  # it had run well for a while
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    @property
    def healthy(self) -> bool:
        """Whether every supervised function is running without failing."""
        return not self.failing


__all__ = ["Supervisor"]
