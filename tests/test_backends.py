from collections.abc import Collection

import pytest

from roomcast.backends import Backend, MemoryBackend, Outgoing, Target


def test_a_backend_missing_methods_fails_at_construction() -> None:
    class Incomplete(Backend):
        async def add(self, sid: str) -> None:
            pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


async def test_memory_backend_resolves_targets() -> None:
    delivered: list[tuple[set[str], str]] = []

    async def deliver(
        sids: Collection[str], message: Outgoing, exclude: str | None = None
    ) -> None:
        delivered.append((set(sids) - {exclude}, message.event))

    backend = MemoryBackend()
    await backend.open(deliver)
    for sid in "abc":
        await backend.add(sid)
    await backend.join("a", "r")
    await backend.join("b", "r")
    await backend.join("b", "s")
    await backend.join("ghost", "r")  # not a connection: ignored

    async def publish(target: Target) -> set[str]:
        delivered.clear()
        await backend.publish(target, Outgoing("e", None))
        return delivered[0][0] if delivered else set()

    assert await publish(Target()) == {"a", "b", "c"}
    assert await publish(Target(exclude="a")) == {"b", "c"}
    assert await publish(Target(rooms=frozenset({"r"}))) == {"a", "b"}
    assert await publish(Target(rooms=frozenset({"r"}), exclude="b")) == {"a"}
    assert await publish(Target(rooms=frozenset({"r", "s"}), exclude="a")) == {"b"}
    assert await publish(Target(rooms=frozenset({"empty"}))) == set()
    assert await publish(Target(sid="c")) == {"c"}
    assert await publish(Target(sid="ghost")) == set()
    assert await backend.members("r") == {"a", "b"}
    assert await backend.rooms_of("b") == {"r", "s"}
    assert backend.local_rooms("b") == {"r", "s"}
    assert await backend.remove("b") == {"r", "s"}
    assert await backend.members("s") == frozenset()
    assert repr(backend) == "<MemoryBackend connections=2 rooms=1>"
    await backend.close()
