"""Presence: who is in a room, with what each chose to show (after Phoenix Presence).

A *track* is one connection present in one room, under a `key` (a user id, say) with a `meta`
dict that carries the track's unique `"ref"`. Two tabs of one user are two tracks under one
key. The shapes clients see are Phoenix's:

- the state, `{key: [meta, ...]}`, each key's metas oldest first;
- a diff, `{"joins": {key: [meta, ...]}, "leaves": {key: [meta, ...]}}`: an update is a leave
  of the old meta and a join of the new one, which has a new `"ref"`.

A client starts from `presence_state` and applies every `presence_diff` after it: joins add
the metas whose `"ref"` it does not have, leaves remove the metas with those refs. Applying a
diff twice, or a join already in the state, changes nothing, so a client that holds back the
diffs it gets before its state and applies them after it ends with the room's state.

`Diffs` coalesces, per room, the changes made on this process within `window` seconds into one
diff (and one state, for every connection that tracked in that window), as Phoenix's tracker
batches its deltas: a join storm of N tracks costs a few diffs per window, not N. A batch also
stays open for as long as the room's previous one is being sent, so under load (a state read
from Redis for the newcomers) batches grow rather than queue.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio

from ._exceptions import InvalidPayload, TooLarge
from ._limits import Limits, check_payload, is_utf8

MAX_KEY = 256
"""The longest presence key, in characters."""


@dataclass(frozen=True, slots=True)
class Track:
    """One connection present in one room: under `key`, with `meta` (its `"ref"` included),
    since `at` (nanoseconds of the wall clock, which orders tracks across processes)."""

    key: str
    sid: str
    meta: dict[str, Any]
    at: int

    @property
    def ref(self) -> str:
        ref: str = self.meta["ref"]
        return ref

    def dump(self) -> str:
        """The track as JSON text, for a backend to keep."""
        return json.dumps([self.key, self.sid, self.at, self.meta], separators=(",", ":"))

    @classmethod
    def load(cls, text: str | bytes) -> Track:
        key, sid, at, meta = json.loads(text)
        return cls(key, sid, meta, at)

    @classmethod
    def load_many(cls, texts: list[bytes]) -> list[Track]:
        """The tracks of many `dump()` texts, read in one go."""
        if not texts:
            return []
        loaded = json.loads(b"[" + b",".join(texts) + b"]")
        return [cls(key, sid, meta, at) for key, sid, at, meta in loaded]


def new_track(sid: str, key: str, meta: dict[str, Any]) -> Track:
    return Track(key, sid, {**meta, "ref": secrets.token_urlsafe(9)}, time.time_ns())


def check_key(key: Any) -> str:
    """Return `key` if it can name a presence, else raise `InvalidPayload`."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or not is_utf8(key):
        raise InvalidPayload(f"A presence key must be a string of 1 to {MAX_KEY} characters.")
    return key


def check_meta(meta: Any, limits: Limits) -> dict[str, Any]:
    """Return `meta` if it can be a presence's meta: a JSON object, without `"ref"` (roomcast
    sets it), within the app's payload limits. Else raise `InvalidPayload`."""
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise InvalidPayload("A presence's meta must be a JSON object (a dict with str keys).")
    if "ref" in meta:
        raise InvalidPayload('A presence\'s meta must not set "ref": roomcast sets it.')
    try:
        check_payload(meta, limits.max_payload, limits.max_depth)
        json.dumps(meta, allow_nan=False)
    except TooLarge as exc:
        raise InvalidPayload(f"A presence's meta is over the limits: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"A presence's meta must be JSON: {exc}") from exc
    return meta


def grouped(tracks: Iterable[Track]) -> dict[str, list[dict[str, Any]]]:
    """Tracks in Phoenix's shape: each key's metas, oldest first."""
    state: dict[str, list[dict[str, Any]]] = {}
    for track in sorted(tracks, key=lambda t: (t.at, t.ref)):
        state.setdefault(track.key, []).append(track.meta)
    return state


@dataclass(slots=True)
class Batch:
    """The changes of one room on this process not sent yet."""

    joins: dict[str, Track] = field(default_factory=dict)
    leaves: dict[str, Track] = field(default_factory=dict)
    newcomers: list[Any] = field(default_factory=list)
    """The connections whose first track in the room this is: they are sent the state."""

    def add(self, joins: Iterable[Track], leaves: Iterable[Track]) -> None:
        for track in leaves:
            # Joined and left within the window: nobody needs to hear of it.
            if self.joins.pop(track.ref, None) is None:
                self.leaves[track.ref] = track
        for track in joins:
            self.joins[track.ref] = track

    def diff(self, room: str) -> dict[str, Any] | None:
        if not self.joins and not self.leaves:
            return None
        joins, leaves = self.joins.values(), self.leaves.values()
        return {"room": room, "joins": grouped(joins), "leaves": grouped(leaves)}


Flush = Callable[[str, Batch], Awaitable[None]]


class Diffs:
    """The presence changes of this process, coalesced per room within `window` seconds.

    The first change of a room opens a batch and waits `window` seconds (shielded: a batch is
    always sent), then sends it with `flush`; changes made meanwhile join that batch. One
    room's batches are sent one at a time, in order.
    """

    def __init__(self, flush: Flush, window: float) -> None:
        self.flush = flush
        self.window = window
        self._open: dict[str, Batch] = {}
        self._sending: dict[str, anyio.Event] = {}

    async def changed(
        self,
        room: str,
        joins: Iterable[Track] = (),
        leaves: Iterable[Track] = (),
        newcomer: Any = None,
    ) -> None:
        batch = self._open.get(room)
        opener = batch is None
        if batch is None:
            batch = self._open[room] = Batch()
        batch.add(joins, leaves)
        if newcomer is not None:
            batch.newcomers.append(newcomer)
        if not opener:
            return  # sent by the change that opened the batch
        with anyio.CancelScope(shield=True):
            await anyio.sleep(self.window)
            # While the room's previous batch is being sent, this one stays open: under load,
            # batches grow instead of queueing.
            before = self._sending.get(room)
            if before is not None:
                await before.wait()
            del self._open[room]
            sent = self._sending[room] = anyio.Event()
            try:
                await self.flush(room, batch)
            finally:
                sent.set()
                if self._sending.get(room) is sent:
                    del self._sending[room]


__all__ = ["MAX_KEY", "Batch", "Diffs", "Track", "check_key", "check_meta", "grouped", "new_track"]
