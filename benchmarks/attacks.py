"""Attacks: what hostile clients can make the example chat server hold, log, or stop doing.

    .venv/bin/python -m benchmarks.attacks [--only NAME[,NAME...]] [--json out.json]
        [--redis URL] [--max-rss-mb 4096] [--keep-logs]

Each attack gets a fresh `python -m examples.basic_chat` (uvicorn, ws="websockets-sansio",
its default limits) on a free 127.0.0.1 port, its stdout and stderr in one temporary log file,
so one attack's memory does not hide the next. Before the attack two fresh python-socketio
clients check that the chat works (and warm the server up); then the server's VmRSS and the
log's size are read, the attack runs, its connections are dropped, and once the log has
stopped growing (for 1.5 s; at most 30 s) the server is read again and the two-client check
runs again: `recovered` says whether both clients (socketio.AsyncClient, websocket
transport), after both `emit("ready", "chat")` and one `emit("send", {"room": "chat",
"message": "hi", "author": "x"})`, saw `message` within 5 s. All traffic stays on 127.0.0.1;
every loop is bounded in count and in time.

The attacks (each in at most about a minute):

- `binary-bomb`: one connection sends a Socket.IO binary event that announces 9,999,999,999
  attachments (`459999999999-["send",{"_placeholder":true,"num":0}]`), then 1,500 binary
  websocket frames of 1,000,000 bytes (Engine.IO's default `max_http_buffer_size`, the
  largest message it takes), until the server closes the connection or 30 s pass.
- `never-read`: 20 connections, over bare TCP with the websocket framed by hand, join room
  `chat` and stop reading their socket (the transport's reading is paused), then for 20 s
  each sends `send` events of 64 KiB to the room at 90 a second, under the app's default
  rate limit (`Limits(rate=100, burst=200)`). The 64 KiB is the event's `picture` (a base64
  `data:image/png` URL at the app's `MAX_PICTURE` of 65,536 characters): the one field the
  chat broadcasts at that size (`message` stops at 2,000 characters). Every event goes to all
  20, none of which reads. A connection the server drops is replaced by a new one that joins
  and stops reading in turn (at most 5,000 opened in all), so 20 are at it all along.
- `unfinished-fragments`: 40 connections (bare TCP, not reading) each send the first 15 MiB
  of a text message (a first frame with FIN=0, then 1 MiB continuation frames, under
  uvicorn's 16 MiB `ws_max_size`) and never finish it; held 10 s once all is sent.
- `malformed`: 60,000 malformed frames, `42{"a":1}`, `42["x",` and `49` in turn, over 4
  connections (the `websockets` client, reading and answering pings), as fast as the server
  takes them, for at most 40 s; a connection the server closes is replaced. Each ends with
  the closing handshake, so the server reads everything sent before.

Measured: for `malformed`, the log's growth; for the others, the server's RSS growth: its
peak during and after the attack (VmHWM when that rose during the attack, else the highest
VmRSS sampled every 0.2 s) less its VmRSS just before. MB here is 2^20 bytes. `pass` needs
the measure under the limit and the server still alive. `--max-rss-mb` stops an attack
early (a fail, then) if the server's RSS passes it, to spare the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from ._common import ROOT, machine, memory_kb, raise_open_files_limit, table, write_json

HOST = "127.0.0.1"
WS_PATH = "/socket.io/?EIO=4&transport=websocket"
MB = 1024 * 1024


# -- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """The example chat in a subprocess, its stdout and stderr in `log`."""

    def __init__(self, log: Path, redis: str | None = None) -> None:
        self.log = log
        self.port = free_port()
        command = [sys.executable, "-m", "examples.basic_chat", "--host", HOST]
        command += ["--port", str(self.port)]
        if redis:
            command += ["--redis", redis]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.pid = self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_tail(self, lines: int = 15) -> str:
        with open(self.log, "rb") as f:
            f.seek(max(0, self.log_size() - 64 * 1024))
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"the server exited:\n{self.log_tail()}")
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return
        raise RuntimeError(f"the server did not listen within {timeout:.0f} s")

    def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
                return
            except subprocess.TimeoutExpired:
                pass
        if self.alive:
            self.proc.kill()
        self.proc.wait()


class Sampler:
    """Reads the server's memory every `interval` s in a thread: the highest VmRSS seen, the
    last VmHWM; `tripped` is set once VmRSS passes `cap_kb`."""

    def __init__(self, pid: int, cap_kb: int, interval: float = 0.2) -> None:
        self.pid, self.cap_kb, self.interval = pid, cap_kb, interval
        self.max_rss = 0
        self.peak = 0
        self.tripped = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        found = memory_kb(self.pid)
        if found:
            self.max_rss = max(self.max_rss, found["rss"])
            self.peak = max(self.peak, found["peak"])
            if found["rss"] > self.cap_kb:
                self.tripped.set()

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()


# -- clients --------------------------------------------------------------------------------


def url(port: int) -> str:
    return f"ws://{HOST}:{port}{WS_PATH}"


def ws_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """One masked client frame, as bytes on the wire."""
    return Frame(opcode, data, fin=fin).serialize(mask=True)


class RawSocket:
    """A Socket.IO client over a bare TCP stream with the websocket framed by hand, so that
    it can stop reading its socket, or start a message and never finish it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, timeout: float = 10.0) -> RawSocket:
        """Upgrade to a websocket, read the Engine.IO open packet, connect the namespace."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port)
            raw = cls(reader, writer)
            try:
                key = base64.b64encode(os.urandom(16)).decode()
                writer.write(
                    f"GET {WS_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                    f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 101"):
                    raise ConnectionError(f"no upgrade: {head[:80]!r}")
                await raw.read_text("0")
                raw.write(ws_frame(Opcode.TEXT, b"40"))
                await raw.read_text("40")
            except BaseException:
                raw.abort()
                raise
        return raw

    async def read_text(self, prefix: str) -> str:
        """Read frames until a text frame starting with `prefix`; answer Engine.IO pings."""
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            data = await self.reader.readexactly(length)
            if first & 0x0F == Opcode.CLOSE:
                raise ConnectionError("the server closed the websocket")
            if first & 0x0F == Opcode.TEXT:
                text = data.decode()
                if text == "2":
                    self.write(ws_frame(Opcode.TEXT, b"3"))
                elif text.startswith(prefix):
                    return text

    def stop_reading(self) -> None:
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]

    async def closed_by_server(self, wait: float = 0.5) -> bool:
        """Read again, dropping what comes: whether the server has closed the connection
        (the stream ends within `wait` s)."""
        self.writer.transport.resume_reading()  # type: ignore[attr-defined]
        try:
            async with asyncio.timeout(wait):
                while await self.reader.read(64 * 1024):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def send(self, data: bytes, deadline: float) -> bool:
        """Write `data`, waiting for the socket to take it until `deadline` (monotonic).
        False when it did not take it in time; `ConnectionError` when the server closed."""
        if self.writer.transport.is_closing():
            raise ConnectionResetError("closed")
        self.writer.write(data)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self.writer.drain()
        except TimeoutError:
            return False
        return True

    def abort(self) -> None:
        self.writer.transport.abort()


async def open_raw(port: int, count: int) -> tuple[list[RawSocket], int]:
    """Open `count` raw connections; the ones that opened and how many failed."""
    opened = await asyncio.gather(
        *(RawSocket.open(port) for _ in range(count)), return_exceptions=True
    )
    sockets = [s for s in opened if isinstance(s, RawSocket)]
    return sockets, count - len(sockets)


async def ws_connect(port: int) -> ClientConnection:
    """A `websockets` connection with the Socket.IO default namespace connected."""
    ws = await connect(
        url(port),
        compression=None,
        max_size=None,
        ping_interval=None,
        open_timeout=10,
        close_timeout=10,
    )
    try:
        async with asyncio.timeout(10):
            while not str(await ws.recv()).startswith("0"):
                pass
            await ws.send("40")
            while not str(await ws.recv()).startswith("40"):
                pass
    except BaseException:
        await ws.close()
        raise
    return ws


async def read_all(ws: ClientConnection) -> None:
    """Read and drop what the server sends; answer Engine.IO pings."""
    try:
        async for message in ws:
            if message == "2":
                await ws.send("3")
    except ConnectionClosed:
        pass


async def close(ws: ClientConnection, reader: asyncio.Task[None]) -> None:
    """Close `ws` with the closing handshake, so the server reads all that was sent first
    (at most 10 s; then drop it)."""
    try:
        async with asyncio.timeout(10):
            await ws.close()
    except TimeoutError:
        ws.transport.abort()
    reader.cancel()


async def check_chat(port: int, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether two fresh clients that join `chat` both get the `message` one of them sends,
    within `timeout` s of the first `ready`; and what went wrong if not."""
    clients = [socketio.AsyncClient(reconnection=False) for _ in range(2)]
    announced = [asyncio.Event() for _ in clients]
    received = [asyncio.Event() for _ in clients]
    for client, ann, rec in zip(clients, announced, received, strict=True):
        client.on("announce", lambda data, ann=ann: ann.set())
        client.on("message", lambda data, rec=rec: rec.set())
    step = "connect"
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(
                *(
                    c.connect(f"http://{HOST}:{port}", transports=["websocket"], wait_timeout=5)
                    for c in clients
                )
            )
        async with asyncio.timeout(timeout):
            step = "ready"
            for client in clients:
                await client.emit("ready", "chat")
            await asyncio.gather(*(a.wait() for a in announced))
            step = "message"
            await clients[0].emit("send", {"room": "chat", "message": "hi", "author": "x"})
            await asyncio.gather(*(r.wait() for r in received))
        return True, "ok"
    except (TimeoutError, socketio.exceptions.SocketIOError, OSError) as exc:
        return False, f"{step}: {type(exc).__name__} {exc}".strip()
    finally:
        for client in clients:
            try:
                async with asyncio.timeout(3):
                    await client.disconnect()
            except Exception:
                pass


# -- the attacks --------------------------------------------------------------------------

Details = dict[str, Any]


async def binary_bomb(port: int, stop: threading.Event) -> Details:
    frames, size, seconds = 1_500, 1_000_000, 30.0
    chunk = os.urandom(size)
    sent, closed, why = 0, False, "all sent"
    deadline = time.monotonic() + seconds
    ws = await ws_connect(port)
    reader = asyncio.create_task(read_all(ws))
    try:
        await ws.send('459999999999-["send",{"_placeholder":true,"num":0}]')
        while sent < frames:
            if stop.is_set():
                why = "stopped at --max-rss-mb"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = f"{seconds:.0f} s passed"
                break
            try:
                async with asyncio.timeout(remaining):
                    await ws.send(chunk)
            except TimeoutError:
                continue
            except ConnectionClosed:
                closed, why = True, "the server closed"
                break
            sent += 1
    finally:
        reader.cancel()
        ws.transport.abort()
    return {
        "frames_sent": sent,
        "mb_sent": sent * size / MB,
        "closed_by_server": closed,
        "ended": why,
    }


async def never_read(port: int, stop: threading.Event) -> Details:
    count, rate, seconds, most_opened = 20, 90.0, 20.0, 5_000
    picture = "data:image/png;base64," + "A" * (64 * 1024 - len("data:image/png;base64,"))
    event = (
        '42["send",{"room":"chat","author":"x","message":"hi","picture":"' + picture + '"}]'
    ).encode()
    frame = ws_frame(Opcode.TEXT, event)
    ready = ws_frame(Opcode.TEXT, b'42["ready","chat"]')

    def deaf(raw: RawSocket) -> None:
        raw.write(ready)
        raw.stop_reading()

    first, failed = await open_raw(port, count)
    for raw in first:  # all in the room before anyone sends
        deaf(raw)
    everyone = list(first)
    sent = [0] * len(first)
    closed = failed_later = 0
    started = time.monotonic()
    deadline = started + seconds

    async def one(i: int, raw: RawSocket | None) -> None:
        nonlocal closed, failed_later
        due = time.monotonic()
        while sent[i] < rate * seconds and not stop.is_set():
            if time.monotonic() >= deadline:
                return
            if raw is None:  # the server dropped this slot's connection: open another
                if len(everyone) >= most_opened:
                    return
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        raw = await RawSocket.open(port)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    if time.monotonic() < deadline:  # not merely cut short by the end
                        failed_later += 1
                    return
                everyone.append(raw)
                deaf(raw)
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(min(due, deadline) - now)
                continue
            try:
                if not await raw.send(frame, deadline):
                    return
            except ConnectionError:
                closed += 1
                raw = None
                continue
            sent[i] += 1
            due = max(due + 1 / rate, time.monotonic() - 1 / rate)

    try:
        await asyncio.gather(*(one(i, raw) for i, raw in enumerate(first)))
    finally:
        for raw in everyone:
            raw.abort()
    elapsed = time.monotonic() - started
    return {
        "connections": len(first),
        "failed_to_open": failed + failed_later,
        "opened_in_all": len(everyone),
        "events_sent": sum(sent),
        "events_per_s_per_connection": sum(sent) / max(1, len(first)) / elapsed,
        "mb_sent": sum(sent) * len(frame) / MB,
        "closed_by_server": closed,
        "seconds": elapsed,
        "stopped_at_cap": stop.is_set(),
    }


async def unfinished_fragments(port: int, stop: threading.Event) -> Details:
    count, total, piece, send_seconds, hold = 40, 15 * MB, MB, 30.0, 10.0
    prefix = b'42["send",{"room":"chat","author":"x","message":"'
    first = ws_frame(Opcode.TEXT, prefix + b"a" * (piece - len(prefix)), fin=False)
    more = ws_frame(Opcode.CONT, b"a" * piece, fin=False)
    sockets, failed = await open_raw(port, count)
    sent = [0] * len(sockets)
    closed = [False] * len(sockets)
    started = time.monotonic()
    deadline = started + send_seconds

    async def one(i: int, raw: RawSocket) -> None:
        raw.stop_reading()
        while sent[i] < total and not stop.is_set():
            try:
                if not await raw.send(first if sent[i] == 0 else more, deadline):
                    return
            except ConnectionError:
                closed[i] = True
                return
            sent[i] += piece

    try:
        await asyncio.gather(*(one(i, raw) for i, raw in enumerate(sockets)))
        sending = time.monotonic() - started
        await asyncio.to_thread(stop.wait, hold)
        gone = await asyncio.gather(*(raw.closed_by_server() for raw in sockets))
        closed = [a or b for a, b in zip(closed, gone, strict=True)]
    finally:
        for raw in sockets:
            raw.abort()
    return {
        "connections": len(sockets),
        "failed_to_open": failed,
        "frames_sent": sum(sent) // piece,
        "mb_sent": sum(sent) / MB,
        "fully_sent": sum(1 for n in sent if n >= total),
        "send_seconds": sending,
        "held_seconds": hold,
        "closed_by_server": sum(closed),
        "stopped_at_cap": stop.is_set(),
    }


async def malformed(port: int, stop: threading.Event) -> Details:
    total, lanes, seconds = 60_000, 4, 40.0
    kinds = ['42{"a":1}', '42["x",', "49"]
    sent = [0] * lanes
    reconnects = [0] * lanes
    started = time.monotonic()
    deadline = started + seconds

    async def one(lane: int) -> None:
        quota = total // lanes
        while sent[lane] < quota and time.monotonic() < deadline and not stop.is_set():
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    ws = await ws_connect(port)
            except (TimeoutError, OSError, ConnectionClosed):
                return
            reader = asyncio.create_task(read_all(ws))
            try:
                while sent[lane] < quota and not stop.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    async with asyncio.timeout(remaining):
                        await ws.send(kinds[sent[lane] % len(kinds)])
                    sent[lane] += 1
            except TimeoutError:
                return
            except ConnectionClosed:
                reconnects[lane] += 1
            finally:
                await close(ws, reader)

    await asyncio.gather(*(one(lane) for lane in range(lanes)))
    return {
        "frames_sent": sum(sent),
        "connections": lanes,
        "closed_by_server": sum(reconnects),
        "seconds": time.monotonic() - started,
        "stopped_at_cap": stop.is_set(),
    }


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[int, threading.Event], Awaitable[Details]]
    metric: str  # "rss" or "log"
    limit_mb: float


ATTACKS = [
    Attack("binary-bomb", binary_bomb, "rss", 64),
    Attack("never-read", never_read, "rss", 256),
    Attack("unfinished-fragments", unfinished_fragments, "rss", 128),
    Attack("malformed", malformed, "log", 2),
]


# -- running them ---------------------------------------------------------------------------


async def settle(server: Server, most: float = 30.0, quiet: float = 1.5) -> None:
    """Wait until the log has not grown for `quiet` s (at most `most` s): the server has
    worked through what the attack left it."""
    deadline = time.monotonic() + most
    size, still_since = server.log_size(), time.monotonic()
    while time.monotonic() < deadline and server.alive:
        await asyncio.sleep(0.25)
        now = server.log_size()
        if now != size:
            size, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return


async def run_attack(attack: Attack, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    server = Server(logs / f"{attack.name}.log", args.redis)
    result: dict[str, Any] = {
        "attack": attack.name,
        "metric": attack.metric,
        "limit_mb": attack.limit_mb,
    }
    try:
        await server.wait_ready()
        ok, why = await check_chat(server.port)
        if not ok:
            raise RuntimeError(f"the chat did not work before the attack ({why})")
        await asyncio.sleep(0.5)
        before = memory_kb(server.pid) or {"rss": 0, "peak": 0}
        log_before = server.log_size()
        started = time.monotonic()
        with Sampler(server.pid, args.max_rss_mb * 1024) as sampler:
            try:
                details = await attack.run(server.port, sampler.tripped)
            except Exception as exc:
                details = {"error": f"{type(exc).__name__}: {exc}"}
            attack_seconds = time.monotonic() - started
            await settle(server)
        after = memory_kb(server.pid)
        log_after = server.log_size()
        alive = server.alive
        recovered, recovery = await check_chat(server.port) if alive else (False, "dead")
        peak_kb = sampler.peak if sampler.peak > before["peak"] else sampler.max_rss
        growth_mb = max(0, peak_kb - before["rss"]) / 1024
        log_growth = log_after - log_before
        measured = growth_mb if attack.metric == "rss" else log_growth / MB
        result.update(
            rss_before_mb=before["rss"] / 1024,
            peak_mb=peak_kb / 1024,
            rss_after_mb=after["rss"] / 1024 if after else None,
            rss_growth_mb=growth_mb,
            log_growth_bytes=log_growth,
            measured_mb=measured,
            alive=alive,
            passed=alive and measured < attack.limit_mb and not sampler.tripped.is_set(),
            recovered=recovered,
            recovery=recovery,
            attack_seconds=attack_seconds,
            details=details,
        )
        if not alive:
            result["log_tail"] = server.log_tail()
    finally:
        server.stop()
        if not args.keep_logs:
            server.log.unlink(missing_ok=True)
    return result


def fmt_mb(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} MB" if value >= 10 else f"{value:.2f} MB"


def summary(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        what = "RSS growth" if r["metric"] == "rss" else "log growth"
        rows.append(
            [
                r["attack"],
                f"{what} < {r['limit_mb']:g} MB",
                f"{what} {fmt_mb(r['measured_mb'])}",
                "pass" if r["passed"] else "FAIL",
                "yes" if r["recovered"] else f"no ({r['recovery']})",
            ]
        )
    return table(["attack", "limit", "measured", "pass/fail", "recovered"], rows)


def detail_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        d = r["details"]
        sent = d.get("frames_sent", d.get("events_sent"))
        rows.append(
            [
                r["attack"],
                r["rss_before_mb"],
                r["peak_mb"],
                r["rss_after_mb"],
                r["log_growth_bytes"] / 1024,
                r["alive"],
                sent,
                d.get("mb_sent"),
                d.get("closed_by_server"),
                r["attack_seconds"],
                d.get("error") or d.get("ended") or ("capped" if d.get("stopped_at_cap") else ""),
            ]
        )
    headers = [
        "attack",
        "RSS before MB",
        "peak MB",
        "RSS after MB",
        "log KB",
        "alive",
        "frames/events sent",
        "MB sent",
        "closed by server",
        "attack s",
        "note",
    ]
    return table(headers, rows)


async def run_all(attacks: list[Attack], args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    logs = Path(tempfile.mkdtemp(prefix="roomcast-attacks-"))
    try:
        for attack in attacks:
            print(f"  {attack.name} ...", file=sys.stderr, flush=True)
            result = await run_attack(attack, args, logs)
            results.append(result)
            print(
                f"  {attack.name}: {fmt_mb(result['measured_mb'])} "
                f"({'pass' if result['passed'] else 'FAIL'}), "
                f"recovered: {'yes' if result['recovered'] else 'no'}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if args.keep_logs:
            print(f"server logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [a.name for a in ATTACKS]
    parser.add_argument("--only", metavar="NAME", help=f"comma-separated, of: {', '.join(names)}")
    parser.add_argument("--redis", metavar="URL", help="give the server this Redis backend")
    parser.add_argument(
        "--max-rss-mb", type=int, default=4096, help="stop an attack when the server passes it"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    chosen = ATTACKS
    if args.only:
        wanted = [n for n in args.only.split(",") if n]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"unknown attack {', '.join(unknown)}: choose from {', '.join(names)}")
        chosen = [a for a in ATTACKS if a.name in wanted]
    raise_open_files_limit()
    print(f"attacks: {machine()}", flush=True)
    print(
        "server: python -m examples.basic_chat (uvicorn ws=websockets-sansio), new per attack",
        flush=True,
    )
    results = asyncio.run(run_all(chosen, args))
    print(f"\n{summary(results)}\n\n{detail_table(results)}")
    for r in results:
        if r.get("log_tail"):
            print(f"\n{r['attack']}: the server died; its log ended with:\n{r['log_tail']}")
    write_json(args.json, {"machine": machine(), "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
