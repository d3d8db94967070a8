import roomcast
import roomcast.backends
import roomcast.testing


def test_public_surface() -> None:
    assert roomcast.__all__ == [
        "Ack",
        "App",
        "BackendRefused",
        "BackendUnavailable",
        "CallNext",
        "ConnectionClosed",
        "ConnectionRejected",
        "Entry",
        "EventError",
        "InvalidPayload",
        "InvalidRoomName",
        "InvalidRoute",
        "JoinRefused",
        "Limits",
        "RateLimited",
        "Reject",
        "Request",
        "Room",
        "RoomcastError",
        "RouteConflict",
        "Router",
        "Stats",
        "TooLarge",
        "TooManyRooms",
        "Transport",
        "UnknownEvent",
        "__version__",
    ]
    assert roomcast.testing.__all__ == ["BackendConformance", "Message", "TestClient"]
    assert roomcast.backends.__all__ == [
        "Backend",
        "MemoryBackend",
        "Node",
        "Outgoing",
        "Target",
        "Track",
    ]
    for module in (roomcast, roomcast.testing, roomcast.backends):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_every_exception_derives_from_roomcast_error() -> None:
    for name in roomcast.__all__:
        member = getattr(roomcast, name)
        if isinstance(member, type) and issubclass(member, BaseException):
            assert issubclass(member, roomcast.RoomcastError), name
            assert (member.__doc__ or "").startswith("Raised "), name


def test_error_codes() -> None:
    assert roomcast.UnknownEvent.code == "unknown_event"
    assert roomcast.InvalidPayload.code == "invalid_payload"
    assert roomcast.InvalidRoomName.code == "invalid_room"
    assert roomcast.BackendUnavailable.code == "unavailable"
    assert roomcast.JoinRefused.code == "forbidden"
    assert roomcast.TooLarge.code == "too_large"
    assert roomcast.TooManyRooms.code == "too_many_rooms"
    assert roomcast.RateLimited.code == "rate_limited"
