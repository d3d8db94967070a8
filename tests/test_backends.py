import pytest

from roomcast import App
from roomcast.backends import Backend, MemoryBackend
from roomcast.testing import TestClient


def test_a_backend_missing_methods_fails_at_construction() -> None:
    class Incomplete(Backend):
        async def add(self, sid: str) -> None:
            pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


def test_a_backend_serves_one_app() -> None:
    backend = MemoryBackend()
    App(backend=backend)
    with pytest.raises(ValueError, match="another app"):
        App(backend=backend)


def test_an_unbound_backend_says_so() -> None:
    with pytest.raises(RuntimeError, match="not bound"):
        MemoryBackend().node  # noqa: B018


async def test_the_memory_backend_answers_from_the_core() -> None:
    app = App()
    async with TestClient(app) as a:
        app.hub.index.join(app.hub.index.connections[a.sid], "r")
        assert await app.backend.members("r") == {a.sid}
        assert await app.backend.rooms_of(a.sid) == {"r"}
        assert await app.backend.rooms_of("ghost") == frozenset()
    assert await app.backend.members("r") == frozenset()
    assert repr(app.backend) == "<MemoryBackend>"
