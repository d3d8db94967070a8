"""The wire format of the in-memory transport: JSON, with bytes carried as attachments.

Values go through the same round trip as over Socket.IO: tuples arrive as lists, dict keys as
strings, and anything JSON cannot carry fails on the sending side with `TypeError`.
"""

from __future__ import annotations

import json
from typing import Any

Encoded = tuple[str, tuple[bytes, ...]]

_PLACEHOLDER = "_placeholder"


def encode(value: Any) -> Encoded:
    """Serialize `value`; `bytes` anywhere inside become numbered attachments."""
    attachments: list[bytes] = []

    def attach(obj: Any) -> Any:
        if isinstance(obj, bytes | bytearray | memoryview):
            attachments.append(bytes(obj))
            return {_PLACEHOLDER: True, "num": len(attachments) - 1}
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    text = json.dumps(value, default=attach, separators=(",", ":"))
    return text, tuple(attachments)


def decode(encoded: Encoded) -> Any:
    """The value `encode` was given, as a receiver sees it."""
    text, attachments = encoded
    if not attachments:
        return json.loads(text)

    def restore(obj: dict[str, Any]) -> Any:
        if obj.get(_PLACEHOLDER) is True and isinstance(obj.get("num"), int) and len(obj) == 2:
            return attachments[obj["num"]]
        return obj

    return json.loads(text, object_hook=restore)
