import pytest

from roomcast import InvalidRoomName, Transport
from roomcast._connection import Connection, State
from roomcast._message import Target
from roomcast._rooms import LocalRooms, check_room_name


class Wire(Transport):
    def encode(self, event: str, data: object, *, offset: str | None = None) -> object:
        return event

    async def send(self, peers: object, encoded: object) -> None:
        pass

    async def close(self, sid: str) -> None:
        pass


def mirrored(index: LocalRooms) -> bool:
    """Both directions agree, no room is empty, and every member is reachable."""
    forward = {(room, sid) for room, members in index._rooms.items() for sid in members.sids}
    backward = {
        (room, conn.sid)
        for conn in index.connections.values()
        if conn.reachable
        for room in conn.rooms
    }
    return forward == backward and all(index._rooms.values())


def opened(index: LocalRooms, *sids: str, transport: Transport | None = None) -> list[Connection]:
    wire = transport or Wire()
    conns = [Connection(sid, wire, f"peer-{sid}") for sid in sids]
    for conn in conns:
        index.add(conn)
    return conns


def test_join_leave_detach_remove_keep_both_directions_in_step() -> None:
    index = LocalRooms()
    a, b = opened(index, "a", "b")
    assert index.join(a, "r1")
    assert not index.join(a, "r1")
    assert index.join(a, "r2")
    assert index.join(b, "r1")
    assert index.members("r1") == {"a", "b"}
    assert a.rooms == {"r1", "r2"}
    assert mirrored(index)
    assert index.leave(a, "r2")
    assert not index.leave(a, "r2")
    assert set(index.rooms()) == {"r1"}
    assert mirrored(index)
    a.move(State.CLOSING)
    assert index.detach(a) == {"r1"}
    assert a.rooms == {"r1"}  # kept for its disconnect hooks...
    assert index.members("r1") == {"b"}  # ...but no longer a member
    assert not index.join(a, "r3")  # a closing connection joins nothing
    assert mirrored(index)
    index.remove(a)
    assert "a" not in index.connections
    b.move(State.CLOSING)
    index.remove(b)
    assert len(index) == 0
    assert mirrored(index)


def test_a_connection_opens_once() -> None:
    index = LocalRooms()
    opened(index, "a")
    with pytest.raises(ValueError, match="already open"):
        opened(index, "a")


def test_receivers_of_each_kind_of_target() -> None:
    index = LocalRooms()
    wire = Wire()
    a, b, c = opened(index, "a", "b", "c", transport=wire)
    index.join(a, "r")
    index.join(b, "r")
    index.join(b, "s")

    def peers(target: Target, unless_in: tuple[str, ...] = ()) -> set[str]:
        groups = index.receivers(target, unless_in)
        assert all(transport is wire for transport, _ in groups)
        return {peer for _, group in groups for peer in group}

    assert peers(Target()) == {"peer-a", "peer-b", "peer-c"}
    assert peers(Target(exclude="a")) == {"peer-b", "peer-c"}
    assert peers(Target(rooms=frozenset({"r"}))) == {"peer-a", "peer-b"}
    assert peers(Target(rooms=frozenset({"r"}), exclude="b")) == {"peer-a"}
    assert peers(Target(rooms=frozenset({"r", "s"}), exclude="a")) == {"peer-b"}
    assert peers(Target(rooms=frozenset({"r"})), unless_in=("s",)) == {"peer-a"}
    assert peers(Target(rooms=frozenset({"empty"}))) == set()
    assert peers(Target(sid="c")) == {"peer-c"}
    assert peers(Target(sid="c", exclude="c")) == set()
    assert peers(Target(sid="ghost")) == set()
    c.move(State.CLOSING)
    index.detach(c)
    assert peers(Target(sid="c")) == set()
    assert peers(Target()) == {"peer-a", "peer-b"}


def test_one_copy_of_a_union_in_join_order() -> None:
    index = LocalRooms()
    a, b = opened(index, "a", "b")
    index.join(a, "x")
    index.join(a, "y")
    index.join(b, "y")
    [(_, peers)] = index.receivers(Target(rooms=frozenset({"x", "y", "missing"})))
    assert peers == ("peer-a", "peer-b")


@pytest.mark.parametrize("name", ["", None, 1, b"room", ["r"], "x" * 257, "\ud800", "a\udfffb"])
def test_invalid_names(name: object) -> None:
    with pytest.raises(InvalidRoomName) as info:
        check_room_name(name)
    assert info.value.code == "invalid_room"


def test_valid_names_and_limit() -> None:
    assert check_room_name("x" * 256) == "x" * 256
    assert check_room_name("é 🎉") == "é 🎉"
    assert check_room_name("abc", max_length=3) == "abc"
    with pytest.raises(InvalidRoomName, match="at most 3"):
        check_room_name("abcd", max_length=3)
