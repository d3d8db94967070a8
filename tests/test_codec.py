import pytest

from roomcast._codec import decode, encode


@pytest.mark.parametrize(
    "value",
    [None, 0, "", "ünïcode ✓", [1, [2, [3]]], {"a": {"b": None}}, True, 1.5],
)
def test_round_trip(value: object) -> None:
    assert decode(encode(value)) == value


def test_bytes_travel_as_attachments() -> None:
    text, attachments = encode({"file": b"\x00\x01", "parts": [b"a", bytearray(b"b")]})
    assert b"\x00\x01" not in text.encode()
    assert attachments == (b"\x00\x01", b"a", b"b")
    assert decode((text, attachments)) == {"file": b"\x00\x01", "parts": [b"a", b"b"]}


def test_a_dict_shaped_like_a_placeholder_without_attachments_is_left_alone() -> None:
    value = {"_placeholder": True, "num": 0}
    assert decode(encode(value)) == value


def test_what_json_cannot_carry_fails_on_the_sending_side() -> None:
    with pytest.raises(TypeError, match="set"):
        encode({1, 2})
