"""What the Redis backend writes: its Lua scripts, and the frames nodes send each other.

A frame is one message on a pub/sub channel: the node that sent it on a line of its own (so
that a node drops its own messages unread), the lengths of the parts, then a JSON text and its
binary attachments. The JSON text is an envelope whose first item says its kind:

- `["m", rooms, sid, exclude, event, data]`: a broadcast (`rooms` `None` for everyone);
- `["q", id, reply_to, sid, command, args]`: a command for the node that holds `sid`;
- `["r", id, outcome]`: the answer to command `id`: `["ok", value]`, `["closed", message]`,
  `["timeout", ""]` or `["error", code, message]`.

A room's history is a stream, `history:<room>`: each entry's one field `m` is a frame of
`[event, data]`, and its id is the entry's offset.

Keys (each under the backend's prefix): `room:<name>` and `rooms:<sid>` (sets: membership),
`owner` (hash: sid → node), `node:<id>` (set: a node's sids), `nodes` (set), `alive:<id>` (a
key with a time to live), `presence:<room>` (hash: ref → track) and `tracks:<sid>` (hash:
room → ref, to find a connection's tracks).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import _codec

# Forget a connection's tracks: take each out of its room's presence. Returns, for each, its
# room and the track as kept. (Lua: `forget_tracks(p, sid, gone)`.)
_FORGET_TRACKS = """
local function forget_tracks(p, sid, gone)
  local tracks = redis.call('HGETALL', p .. 'tracks:' .. sid)
  for i = 1, #tracks, 2 do
    local key = p .. 'presence:' .. tracks[i]
    local value = redis.call('HGET', key, tracks[i + 1])
    if value then
      redis.call('HDEL', key, tracks[i + 1])
      table.insert(gone, tracks[i])
      table.insert(gone, value)
    end
  end
  redis.call('DEL', p .. 'tracks:' .. sid)
end
"""

# Forget a connection: take it out of each of its rooms, their presences, and its node.
# ARGV: prefix, sid, node
REMOVE = (
    _FORGET_TRACKS
    + """
local p, sid, node = ARGV[1], ARGV[2], ARGV[3]
local rooms = redis.call('SMEMBERS', p .. 'rooms:' .. sid)
for _, room in ipairs(rooms) do redis.call('SREM', p .. 'room:' .. room, sid) end
redis.call('DEL', p .. 'rooms:' .. sid)
forget_tracks(p, sid, {})
redis.call('SREM', p .. 'node:' .. node, sid)
redis.call('HDEL', p .. 'owner', sid)
return rooms
"""
)

# Forget every connection of each node that is dead (no alive key), or of the node given.
# Returns how many, then the room and track of each presence removed.
# ARGV: prefix, node to wipe unconditionally ('' for none)
REAP = (
    _FORGET_TRACKS
    + """
local p, wipe = ARGV[1], ARGV[2]
local reaped = 0
local gone = {}
local nodes = redis.call('SMEMBERS', p .. 'nodes')
if wipe ~= '' then table.insert(nodes, wipe) end
for _, node in ipairs(nodes) do
  if node == wipe or redis.call('EXISTS', p .. 'alive:' .. node) == 0 then
    for _, sid in ipairs(redis.call('SMEMBERS', p .. 'node:' .. node)) do
      for _, room in ipairs(redis.call('SMEMBERS', p .. 'rooms:' .. sid)) do
        redis.call('SREM', p .. 'room:' .. room, sid)
      end
      redis.call('DEL', p .. 'rooms:' .. sid)
      forget_tracks(p, sid, gone)
      if redis.call('HGET', p .. 'owner', sid) == node then
        redis.call('HDEL', p .. 'owner', sid)
      end
      reaped = reaped + 1
    end
    redis.call('DEL', p .. 'node:' .. node)
    if node ~= wipe then redis.call('SREM', p .. 'nodes', node) end
  end
end
table.insert(gone, 1, reaped)
return gone
"""
)


# The time on Redis's clock, in milliseconds, as `now` (for the scripts below).
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# Keep one broadcast in a room's history: at most `size` entries, none older than `ttl`, and the
# stream itself gone `ttl` after its last entry. Returns the entry's id.
# ARGV: key, size, ttl in milliseconds, the frame
KEEP = (
    _NOW
    + """
local key, size, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local id = redis.call('XADD', key, 'MAXLEN', size, '*', 'm', ARGV[4])
redis.call('XTRIM', key, 'MINID', now - ttl)
redis.call('PEXPIRE', key, ttl)
return id
"""
)

# A room's history, none older than `ttl`: after `after`, the first `limit`; else the latest.
# ARGV: key, ttl in milliseconds, after ('' for none), limit ('' for all)
HISTORY = (
    _NOW
    + """
local key, ttl, after, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
redis.call('XTRIM', key, 'MINID', now - ttl)
if after ~= '' then
  if limit ~= '' then return redis.call('XRANGE', key, '(' .. after, '+', 'COUNT', limit) end
  return redis.call('XRANGE', key, '(' .. after, '+')
end
if limit ~= '' then
  local latest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', limit)
  local entries = {}
  for i = #latest, 1, -1 do table.insert(entries, latest[i]) end
  return entries
end
return redis.call('XRANGE', key, '-', '+')
"""
)

STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
"""What an offset of a Redis history looks like."""


def hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def frame_prefix(origin: str) -> bytes:
    return origin.encode() + b"\n"


def frame(origin: str, envelope: list[Any]) -> bytes:
    """One message on the wire: the node that sent it on a line of its own (so that it can
    drop its own messages unread), the lengths of the parts, then a JSON text and its binary
    attachments."""
    text, attachments = _codec.encode(envelope)
    parts = [text.encode()]
    parts += attachments
    header = json.dumps([len(part) for part in parts]).encode()
    return b"".join([frame_prefix(origin), header, b"\n", *parts])


def unframe(frame: bytes) -> list[Any]:
    """The envelope of a frame (its origin left out)."""
    start = frame.index(b"\n") + 1
    newline = frame.index(b"\n", start)
    lengths = json.loads(frame[start:newline])
    parts, offset = [], newline + 1
    for length in lengths:
        parts.append(frame[offset : offset + length])
        offset += length
    envelope: list[Any] = _codec.decode((parts[0].decode(), tuple(parts[1:])))
    return envelope
