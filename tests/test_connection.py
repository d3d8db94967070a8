import pytest

from roomcast._connection import State, move

LIFE = [State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED]


def test_a_connection_lives_in_one_direction() -> None:
    state = State.CONNECTING
    for to in LIFE[1:]:
        state = move(state, to)
    assert state is State.CLOSED
    assert move(State.CONNECTING, State.CLOSING) is State.CLOSING  # refused while connecting


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (State.OPEN, State.CONNECTING),
        (State.CLOSING, State.OPEN),
        (State.CLOSED, State.CONNECTING),
        (State.CLOSED, State.CLOSING),
        (State.CONNECTING, State.CLOSED),
        (State.OPEN, State.OPEN),
    ],
)
def test_any_other_move_is_a_bug(start: State, to: State) -> None:
    with pytest.raises(RuntimeError, match=f"from {start.name} to {to.name}"):
        move(start, to)
