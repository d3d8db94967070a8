"""The soak benchmark at a small size: nothing left behind, memory flat."""

from benchmarks.soak import soak


async def test_cycles_leave_no_rooms_no_connections_and_flat_memory() -> None:
    result = await soak(2_000, rooms=10, warmup=500)
    assert result.rooms_left == 0
    assert result.connections_left == 0
    # Flat: what 2,000 more cycles keep is a few bytes each at most (interned strings,
    # allocator noise), not the kilobytes a leaked connection or room would hold.
    assert result.growth < 2_000 * 16, result
