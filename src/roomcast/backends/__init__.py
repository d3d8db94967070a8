"""Where room state lives: `MemoryBackend` (the default) and the `Backend` seam.

A backend receives a `Target` (who should receive) and an `Outgoing` event (what), and hands
the receivers on this process back to the app through `Deliver`. `RedisBackend` lives in
`roomcast.backends.redis` (extra `roomcast[redis]`).
"""

from .._message import Outgoing as Outgoing
from .._message import Target as Target
from ._base import Backend as Backend
from ._base import Deliver as Deliver
from .memory import MemoryBackend as MemoryBackend

__all__ = ["Backend", "Deliver", "MemoryBackend", "Outgoing", "Target"]
