import pytest

from roomcast import Limits
from roomcast._backlog import SHED, Backlog


def test_within_both_bounds_everything_is_admitted() -> None:
    backlog = Backlog(Limits(max_queued=3, max_queued_bytes=100))
    assert [backlog.admit(30) for _ in range(3)] == [0, 0, 0]
    assert (len(backlog), backlog.bytes) == (3, 90)


@pytest.mark.parametrize(
    ("limits", "sizes"),
    [
        (Limits(max_queued=3, max_queued_bytes=None), [1, 1, 1]),  # by count
        (Limits(max_queued=None, max_queued_bytes=100), [60, 40]),  # by bytes
    ],
)
def test_past_either_bound_the_reader_is_shed(limits: Limits, sizes: list[int]) -> None:
    backlog = Backlog(limits)
    assert [backlog.admit(size) for size in sizes] == [0] * len(sizes)
    assert backlog.admit(1) == SHED
    assert backlog.bytes == sum(sizes)  # nothing was counted for the refused entry


def test_drop_oldest_drops_as_few_as_make_room() -> None:
    backlog = Backlog(Limits(max_queued=None, max_queued_bytes=100, slow_consumer="drop_oldest"))
    for size in (10, 20, 30, 40):
        assert backlog.admit(size) == 0
    assert backlog.admit(25) == 2  # 10 and 20 go: 30 + 40 + 25 fits
    assert list(backlog.sizes) == [30, 40, 25]
    assert backlog.bytes == 95


def test_one_entry_alone_is_admitted_however_large() -> None:
    backlog = Backlog(Limits(max_queued_bytes=100))
    assert backlog.admit(10_000) == 0
    assert backlog.admit(1) == SHED


def test_what_the_writer_took_is_uncounted() -> None:
    backlog = Backlog(Limits(max_queued=None, max_queued_bytes=100))
    for size in (50, 30, 20):
        backlog.admit(size)
    backlog.taken()
    assert backlog.bytes == 50
    backlog.settle(waiting=1)  # only the newest is still queued
    assert list(backlog.sizes) == [20]
    backlog.settle(waiting=5)  # more waiting than counted (another's packets): no change
    assert list(backlog.sizes) == [20]
    backlog.clear()
    assert (len(backlog), backlog.bytes) == (0, 0)


def test_a_count_given_by_the_transport_wins() -> None:
    backlog = Backlog(Limits(max_queued=1_000), max_count=2)
    assert [backlog.admit(1) for _ in range(3)] == [0, 0, SHED]


def test_an_entry_taken_out_of_order_is_uncounted() -> None:
    backlog = Backlog(Limits(max_queued=None, max_queued_bytes=100))
    for size in (10, 20, 30):
        backlog.admit(size)
    backlog.taken_at(1)
    assert list(backlog.sizes) == [10, 30]
    assert backlog.bytes == 40
