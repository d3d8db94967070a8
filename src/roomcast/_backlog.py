"""What waits to be written to one connection, counted in bytes, and what to do when it is
too much: the one slow-consumer policy every transport applies.

Sans-IO: a `Backlog` keeps only the sizes of what a transport queued for one connection,
oldest first. The transport tells it what it queues (`admit`) and what the connection's writer
took (`taken`, or `settle` for a queue it can only measure); `admit` answers how many of the
oldest entries to drop first, or `SHED` when the connection must be disconnected.
"""

from __future__ import annotations

import collections
import math
from typing import Final

from ._limits import Limits

SHED: Final = -1
"""`Backlog.admit`'s answer when the connection reads too slowly and must be disconnected."""


class Backlog:
    """The sizes of the entries waiting for one connection, within `limits.max_queued`
    entries and `limits.max_queued_bytes` bytes, under `limits.slow_consumer`. One entry alone
    is always admitted, however large: the bound is on a backlog, not on a message."""

    __slots__ = ("_drop_oldest", "_max_bytes", "_max_count", "bytes", "sizes")

    def __init__(self, limits: Limits, max_count: int | None = None) -> None:
        count = max_count if max_count is not None else limits.max_queued
        self._max_count: float = math.inf if count is None else count
        size = limits.max_queued_bytes
        self._max_bytes: float = math.inf if size is None else size
        self._drop_oldest = limits.slow_consumer == "drop_oldest"
        self.sizes: collections.deque[int] = collections.deque()
        self.bytes = 0
        """The bytes waiting, in all."""

    def admit(self, size: int) -> int:
        """Count one entry of `size` bytes about to be queued. Return how many of the oldest
        entries the transport must drop first (usually 0; they are already uncounted), or
        `SHED`: the connection reads too slowly, and nothing was counted."""
        sizes = self.sizes
        if not sizes or (len(sizes) < self._max_count and self.bytes + size <= self._max_bytes):
            sizes.append(size)
            self.bytes += size
            return 0
        if not self._drop_oldest:
            return SHED
        dropped = 0
        while sizes and (len(sizes) >= self._max_count or self.bytes + size > self._max_bytes):
            self.bytes -= sizes.popleft()
            dropped += 1
        sizes.append(size)
        self.bytes += size
        return dropped

    def taken(self, count: int = 1) -> None:
        """The connection's writer took the `count` oldest entries."""
        sizes = self.sizes
        for _ in range(min(count, len(sizes))):
            self.bytes -= sizes.popleft()

    def taken_at(self, index: int) -> None:
        """The reader took the entry at `index` (0 is the oldest), out of order."""
        self.bytes -= self.sizes[index]
        del self.sizes[index]

    def settle(self, waiting: int) -> None:
        """Only `waiting` entries are still queued: the writer took the others (the oldest)."""
        excess = len(self.sizes) - waiting
        if excess > 0:
            self.taken(excess)

    def clear(self) -> None:
        """Forget every entry: the queue was emptied."""
        self.sizes.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.sizes)


__all__ = ["SHED", "Backlog"]
