"""Where room state lives: `MemoryBackend` (the default) and the `Backend` seam."""

from ._base import Backend as Backend
from ._base import Deliver as Deliver
from .memory import MemoryBackend as MemoryBackend

__all__ = ["Backend", "Deliver", "MemoryBackend"]
