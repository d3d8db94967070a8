"""Backends carry broadcasts and membership between processes: `MemoryBackend` (the
default, one process) and the `Backend` seam.

The core delivers to this process's connections itself; a backend takes a `Target` (who
should receive) and an `Outgoing` event (what) to the other processes, and hands what they
send to this process's core (`Node`); it keeps presences (`Track`) where every process sees
them. `RedisBackend` lives in `roomcast.backends.redis`
(extra `roomcast[redis]`).
"""

from .._message import Outgoing as Outgoing
from .._message import Target as Target
from .._presence import Track as Track
from ._base import Backend as Backend
from ._base import Node as Node
from .memory import MemoryBackend as MemoryBackend

__all__ = ["Backend", "MemoryBackend", "Node", "Outgoing", "Target", "Track"]
