import pytest

from roomcast import InvalidRoomName
from roomcast._rooms import RoomIndex, check_room_name


def mirrored(index: RoomIndex) -> bool:
    forward = {(room, sid) for room, sids in index._members.items() for sid in sids}
    backward = {(room, sid) for sid, rooms in index._rooms.items() for room in rooms}
    no_empty = all(index._members.values()) and all(index._rooms.values())
    return forward == backward and no_empty


def test_join_leave_remove_keep_both_indexes_in_step() -> None:
    index = RoomIndex()
    assert index.join("a", "r1")
    assert not index.join("a", "r1")
    assert index.join("a", "r2")
    assert index.join("b", "r1")
    assert index.members("r1") == {"a", "b"}
    assert index.rooms_of("a") == {"r1", "r2"}
    assert mirrored(index)
    assert index.leave("a", "r2")
    assert not index.leave("a", "r2")
    assert not index.leave("nobody", "r1")
    assert index.rooms() == {"r1"}
    assert mirrored(index)
    assert index.remove("a") == {"r1"}
    assert index.remove("a") == frozenset()
    assert index.members("r1") == {"b"}
    assert index.remove("b") == {"r1"}
    assert len(index) == 0
    assert index.rooms_of("b") == frozenset()
    assert mirrored(index)


def test_union_counts_each_connection_once() -> None:
    index = RoomIndex()
    index.join("a", "x")
    index.join("a", "y")
    index.join("b", "y")
    assert index.union(["x", "y", "missing"]) == {"a", "b"}


def test_rooms_of_returns_a_copy() -> None:
    index = RoomIndex()
    index.join("a", "x")
    rooms = index.rooms_of("a")
    index.join("a", "y")
    assert rooms == {"x"}


@pytest.mark.parametrize("name", ["", None, 1, b"room", ["r"], "x" * 257])
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
