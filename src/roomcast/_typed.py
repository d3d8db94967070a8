"""Typed payloads: a handler whose second parameter is annotated receives `req.data`
validated and converted by pydantic (extra `roomcast[pydantic]`).

```python
class ChatMessage(BaseModel):
    room: str
    text: str

@app.route("send")
async def send(req: Request, msg: ChatMessage) -> None: ...
```

Decided once, when the route is registered: the annotation (a string one too, under
`from __future__ import annotations`) becomes a pydantic `TypeAdapter`. A payload that fails
is answered with `invalid_payload` and `details`, a list of `{"loc": [...], "msg": ...}`; a
model (or dataclass) the handler returns is acknowledged as JSON.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

from ._exceptions import InvalidPayload
from ._handlers import Endpoint, to_async

INVALID = "The payload is not valid."


def typed_endpoint(handler: Callable[..., Any]) -> Endpoint | None:
    """The endpoint of `handler` if its second parameter is annotated, else `None`."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return None
    if len(parameters) < 2:
        return None
    second = parameters[1]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if second.kind not in positional or second.annotation is inspect.Parameter.empty:
        return None
    annotation = second.annotation
    if isinstance(annotation, str):
        hints = typing.get_type_hints(inspect.unwrap(handler), include_extras=True)
        annotation = hints[second.name]
    try:
        import pydantic
        import pydantic_core
    except ImportError as exc:
        raise ImportError(
            f"The handler {handler!r} takes a typed payload, which needs pydantic: "
            "pip install 'roomcast[pydantic]'"
        ) from exc
    adapter = pydantic.TypeAdapter(annotation)
    call = to_async(handler)

    async def endpoint(request: Any) -> Any:
        try:
            value = adapter.validate_python(request.data)
        except pydantic.ValidationError as exc:
            details = [{"loc": list(error["loc"]), "msg": error["msg"]} for error in exc.errors()]
            raise InvalidPayload(INVALID, details=details) from None
        result = await call(request, value)
        if isinstance(result, pydantic.BaseModel) or (
            dataclasses.is_dataclass(result) and not isinstance(result, type)
        ):
            return pydantic_core.to_jsonable_python(result)
        return result

    endpoint.__wrapped__ = handler  # type: ignore[attr-defined]
    return endpoint


__all__ = ["INVALID", "typed_endpoint"]
