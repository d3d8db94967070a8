"""End-to-end room broadcast over real websockets on 127.0.0.1.

    .venv/bin/python -m benchmarks.fanout [--sizes 50,200,1000] [--duration 5]
        [--servers roomcast,roomcast+history,python-socketio,node] [--repeat 1] [--json out.json]
        [--plot benchmarks/fanout.png] [--stalled N] [--redis-url URL]

For each number of clients C and each server, a fresh server process (roomcast on
python-socketio under uvicorn; raw python-socketio under uvicorn; Node socket.io 4.8) and a
separate Node load-generator process (socket.io-client, `fanout_client.js`) run: C clients
connect over the websocket transport, in batches, and join room `chat`; one of them emits
`send` and every client counts the `message` broadcasts it receives.

The sender keeps a fixed window of messages in flight (about `--inflight` deliveries, i.e.
inflight/C messages, at most 500): the next message goes as soon as one has reached all C
clients, so the offered rate follows what the server can deliver and the throughput is the
server's (or the generator's) limit; the latency is then mostly the window's queueing. With
`--rate R` the sender instead offers a fixed R deliveries/s (R/C messages/s), for latency
below saturation. `--client raw` makes the generator use a minimal Socket.IO client over the
`ws` package instead of socket.io-client, for when the generator is what saturates (watch
its CPU).

After `--warmup` seconds, for `--duration` seconds, it measures deliveries/s (messages
received by all clients / duration), p50/p99 latency (receive time - send time, one clock),
the CPU of the server and of the generator (100% = one core), and `other CPU%`: what the rest
of the machine used meanwhile (it is shared: a high figure marks a disturbed measurement).
`per server CPU-s` is deliveries/s divided by the server's CPU share (how many deliveries one
core's second buys), steadier than deliveries/s when the machine is shared. Ratios (`x`) are
against raw python-socketio at the same C in the same run; with `--repeat`, a last table
gives each run's ratio and the spread.

`--profile DIR` also records each Python server with py-spy (if installed) from the warm-up
to the end of the measurement: DIR/SERVER-C.svg (flame graph) and DIR/SERVER-C.txt
(collapsed stacks).

A server is `roomcast`, `python-socketio` or `node`; the Python ones take a front after `@`:
`uvicorn` (the default, ws="websockets-sansio"), `uvicorn-websockets`, `uvicorn-wsproto`,
`aiohttp` (python-engineio's aiohttp mode) or `uvicorn-deflate` (below), e.g.
`--servers roomcast,roomcast@aiohttp`. Needs `node` and `npm ci --prefix benchmarks`.

Per-message deflate is off (the servers do not accept it, the generator's clients do not offer
it), except with the front `uvicorn-deflate`: uvicorn with its defaults for websockets
(ws="auto", i.e. websockets-sansio, and `ws_per_message_deflate=True`), and a generator whose
clients offer it as real ones do (`fanout_client.js --deflate 1`: socket.io-client's default
`perMessageDeflate`, `ws`'s for `--client raw` and the stalled clients). The generator counts
the clients that negotiated it (`deflated`). A last table gives, for each server X@uvicorn-deflate
against the same X without a front at the same C in the same run (list both in `--servers`,
e.g. `--servers roomcast,roomcast@uvicorn-deflate`), the deliveries/s of each, the server CPU
microseconds per delivery of each and their ratio (deflate / no deflate), the generator's CPU
of each, roomcast's `direct_writes` of each (the probe's: deliveries written straight to the
websocket, from the server's start to the end of the measurement) and the clients that
negotiated deflate; with `--repeat`, each run's ratios too.

A roomcast server may name the source tree it runs from after `=`, to compare two versions
in one run: `--servers roomcast,roomcast=../old/src,python-socketio` runs the second with
`PYTHONPATH=../old/src` (a checkout's `src/`; the benchmark's own server script is this
tree's, and uses only roomcast's public API).

Several processes over Redis: `roomcast-redis2` (generally `roomcast-redisN`, also with a
front: `roomcast-redis2@aiohttp`) runs N roomcast server processes, each an
`App(backend=RedisBackend(--redis-url, prefix=P), limits=Limits(rate=None))` started and
stopped by the ASGI lifespan, with a prefix P of its own for each run. The generator splits
its C clients evenly across them (client i on server i mod N; the sender, client 0, on the
first), so a broadcast reaches 1/N of the clients directly and the rest through Redis pub/sub.
A last table gives, against single-process `roomcast` at the same C in the same run (list
both in `--servers`), the ratio of deliveries/s and of deliveries per server CPU-second (all
N processes' CPU), each process's CPU, redis-server's (when its PID, from `INFO`, is visible
here), p50 latency of each server's clients (local, then through Redis), and the keys of the
run's prefix that the servers left in Redis when they stopped (then deleted).

Room history: `+history` after a roomcast server's name (`roomcast+history`,
`roomcast-redis2+history`, `roomcast+history@aiohttp`) runs it with
`app.keep_history("chat", size=100)` (`fanout_server.py --history`), so that every broadcast is
also appended to room `chat`'s history: in memory, or a Redis stream for `roomcast-redisN`. A
last table gives, against the same server without `+history` at the same C in the same run
(list both in `--servers`), the ratio of deliveries/s and of deliveries per server CPU-second,
and how many entries the room's history held at the end of the measurement (the probe's
`history_kept`: 100 when it kept them); with `--repeat`, each run's ratios too.

Stalled clients: with `--stalled N`, each server at each C runs twice in a row, without and
then with N extra clients (raw, whatever `--client` says) that join `chat` after the C others
and then stop reading (the generator pauses their socket). They count in nothing measured;
a last table gives the C normal clients' deliveries/s with them against without (the ratio),
the server's resident memory (VmRSS) at the end of each measurement and its peak (VmHWM), and
what the server held then (a probe it prints on SIGUSR1: open connections, the longest
Engine.IO queue, and for roomcast `app.stats`, e.g. `slow_consumers_disconnected`). roomcast
bounds each connection's queue (`Limits.max_queued=1000`, `slow_consumer="disconnect"`);
python-socketio and Node socket.io do not. A stalled client first fills the kernel's socket
buffers (a few MB on loopback) before any server queue grows: at a low rate of messages (a
large C) a short run may never get there; `--payload` (characters of text per message, 64 by
default) or a longer `--duration` gets there sooner.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from ._common import (
    HERE,
    ROOT,
    cpu_seconds,
    machine,
    machine_busy_seconds,
    memory_kb,
    raise_open_files_limit,
    table,
    write_json,
)
from .fanout_server import DEFLATE_FRONTS, FRONTS, KINDS

BASELINE = "python-socketio"
NODE_MODULES = HERE / "node_modules"
REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_KIND = re.compile(r"roomcast-redis([1-9][0-9]*)")
HISTORY = "+history"


def split_server(spec: str) -> tuple[str, bool, str]:
    """The kind of server `spec` names (`roomcast-redis2` for `roomcast-redis2+history@aiohttp`),
    whether it keeps history (`+history`), and its front ("" when not named)."""
    spec, _, _ = spec.partition("=")
    kind, _, front = spec.partition("@")
    history = kind.endswith(HISTORY)
    return kind.removesuffix(HISTORY), history, front


def parse_server(spec: str) -> list[str]:
    """The command that starts (one process of) the server `spec` (see the module docstring)."""
    kind, history, front = split_server(spec)
    if kind == "node" and not front and not history:
        return ["node", str(HERE / "fanout_server.js")]
    if REDIS_KIND.fullmatch(kind):
        kind = "roomcast"
    if kind not in KINDS or (front and front not in FRONTS) or (history and kind != "roomcast"):
        raise argparse.ArgumentTypeError(
            f"unknown server {spec!r}: use node, or {'/'.join(KINDS)} or roomcast-redisN "
            f"(N processes sharing rooms through Redis), the roomcast ones optionally "
            f"followed by {HISTORY} (keep room chat's history), then optionally "
            f"by @{'/@'.join(FRONTS)}"
        )
    return [
        sys.executable,
        "-m",
        "benchmarks.fanout_server",
        "--kind",
        kind,
        "--front",
        front or "uvicorn",
        *(["--history"] if history else []),
    ]


def keeps_history(spec: str) -> bool:
    """Whether the server `spec` keeps room `chat`'s history (`+history`)."""
    return split_server(spec)[1]


def without_history(spec: str) -> str:
    """The same server as `spec`, without `+history`: what a history run is compared with."""
    name, equals, source = spec.partition("=")
    kind, at, front = name.partition("@")
    return f"{kind.removesuffix(HISTORY)}{at}{front}{equals}{source}"


def deflates(spec: str) -> bool:
    """Whether the server `spec` accepts per-message deflate (`@uvicorn-deflate`), so that the
    generator's clients offer it."""
    return split_server(spec)[2] in DEFLATE_FRONTS


def without_deflate(spec: str) -> str:
    """The same server as `spec` without its front (so without per-message deflate): what a
    deflate run is compared with."""
    name, equals, source = spec.partition("=")
    return f"{name.partition('@')[0]}{equals}{source}"


def source_env(spec: str) -> dict[str, str] | None:
    """The environment of a server that runs roomcast from another source tree (`=DIR`)."""
    _, equals, source = spec.partition("=")
    if not equals:
        return None
    return {**os.environ, "PYTHONPATH": str(Path(source).resolve())}


def redis_processes(spec: str) -> int:
    """How many processes the server `spec` runs over Redis: N for roomcast-redisN, else 0."""
    match = REDIS_KIND.fullmatch(split_server(spec)[0])
    return int(match.group(1)) if match else 0


def single_process(spec: str) -> str:
    """The one-process server that `spec` (roomcast-redisN[+history][@front]) is compared
    with."""
    _, history, front = split_server(spec)
    return f"roomcast{HISTORY if history else ''}{'@' if front else ''}{front}"


def label(spec: str, stalled: int) -> str:
    """How a run is named in the tables: the server, and the stalled clients it had."""
    return f"{spec} +{stalled} stalled" if stalled else spec


def variants(servers: Sequence[str], stalled: int) -> list[tuple[str, int]]:
    """(server, stalled clients) of every run at one C, in the order they run."""
    return [(spec, n) for spec in servers for n in ((0, stalled) if stalled else (0,))]


class Lines:
    """Reads a process's stdout lines in a thread, so they can be awaited with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def next_json(self, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout:.0f} s")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"no {what} within {timeout:.0f} s") from None
            if line is None:
                raise RuntimeError(f"the process ended before {what}")
            line = line.strip()
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                return result


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(file: IO[str]) -> str:
    file.seek(0)
    return "".join(file.readlines()[-20:])


def run_one(spec: str, clients: int, args: argparse.Namespace, stalled: int = 0) -> dict[str, Any]:
    """Start the server `spec` (its processes) and a load generator with `clients` (and
    `stalled` clients that stop reading); return the measurements."""
    command = parse_server(spec)
    python = command[0] == sys.executable
    if args.loop != "asyncio" and python:
        command += ["--loop", args.loop]
    count = redis_processes(spec)
    prefix = None
    if count:
        prefix = f"roomcast-bench-{secrets.token_hex(4)}:"
        command += ["--redis", args.redis_url, "--prefix", prefix]
    redis = redis_pid(args.redis_url) if count else None
    with ExitStack() as files:
        server_errs = [
            files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count or 1)
        ]
        client_err = files.enter_context(tempfile.TemporaryFile("w+"))
        servers: list[subprocess.Popen[str]] = []
        client: subprocess.Popen[str] | None = None
        keys_left = None
        logged_by_then: list[int] = []
        try:
            for err in server_errs:
                servers.append(
                    subprocess.Popen(
                        command,
                        cwd=ROOT,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                        env=source_env(spec),
                    )
                )
            server_lines = [Lines(server.stdout) for server in servers]  # type: ignore[arg-type]
            ports = [lines.next_json(30, "port from the server")["port"] for lines in server_lines]
            client = subprocess.Popen(
                [
                    "node",
                    str(HERE / "fanout_client.js"),
                    *("--url", ",".join(f"http://127.0.0.1:{port}" for port in ports)),
                    *("--clients", str(clients)),
                    *("--warmup", str(args.warmup)),
                    *("--duration", str(args.duration)),
                    *("--inflight", str(args.inflight)),
                    *("--batch", str(args.batch)),
                    *("--rate", str(args.rate)),
                    *("--client", args.client),
                    *("--stalled", str(stalled)),
                    *("--payload", str(args.payload)),
                    *("--deflate", "1" if deflates(spec) else "0"),
                ],
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=client_err,
                text=True,
            )
            lines = Lines(client.stdout)  # type: ignore[arg-type]
            connected = lines.next_json(60 + (clients + stalled) * 0.1, "connections")
            profiler = start_profiler(args.profile, spec, clients, servers[0].pid, command)
            lines.next_json(args.warmup + 30, "start of the measurement")
            pids = [*(server.pid for server in servers), client.pid]
            before = sample(pids, redis)
            lines.next_json(args.duration + 30, "end of the measurement")
            after = sample(pids, redis)
            memory = [memory_kb(server.pid) for server in servers]
            logged_by_then = [os.fstat(err.fileno()).st_size for err in server_errs]
            probes = [
                probe(server, lines_) if python else None
                for server, lines_ in zip(servers, server_lines, strict=True)
            ]
            stop_profiler(profiler)
            result = lines.next_json(60, "results")
            client.wait(30)
        except Exception as exc:
            message = f"{label(spec, stalled)} with {clients} clients failed: {exc}"
            if client is not None:
                stop(client)
                message += f"\n--- load generator stderr ---\n{tail(client_err)}"
            for server, err in zip(servers, server_errs, strict=False):
                stop(server)
                message += f"\n--- server stderr ---\n{tail(err)}"
            raise RuntimeError(message) from exc
        finally:
            if client is not None:
                stop(client)
            for server in servers:
                stop(server)
            if prefix is not None:
                keys_left = drop_prefix(args.redis_url, prefix)
            logged = [
                server_log(err, end) for err, end in zip(server_errs, logged_by_then, strict=False)
            ]
    wall = after[0] - before[0]
    *server_cpus, client_cpu = (a - b for a, b in zip(after[1], before[1], strict=True))
    redis_cpu = None
    if after[2] is not None and before[2] is not None:
        redis_cpu = after[2] - before[2]
    other = None
    if after[3] is not None and before[3] is not None:
        used = sum(server_cpus) + client_cpu + (redis_cpu or 0.0)
        other = max(0.0, 100 * (after[3] - before[3] - used) / wall)
    result.update(
        server=spec,
        stalled=stalled,
        history=keeps_history(spec),
        deflate=deflates(spec),
        server_cpu=100 * sum(server_cpus) / wall,
        client_cpu=100 * client_cpu / wall,
        other_cpu=other,
        ramp_seconds=connected["seconds"],
        server_cpus=[100 * cpu / wall for cpu in server_cpus],
        memory_kb=memory,
        probes=probes,
        server_log=logged,
    )
    if count:
        result.update(
            processes=count,
            redis_pid=redis,
            redis_cpu=None if redis_cpu is None else 100 * redis_cpu / wall,
            redis_keys_left=keys_left,
        )
    return result


def server_log(err: IO[str], end_of_run: int) -> dict[str, list[str]]:
    """What a server wrote on stderr (a quiet server writes nothing) up to the end of the
    measurement (`run`), and after it (`teardown`): a few lines of each."""
    data = os.pread(err.fileno(), os.fstat(err.fileno()).st_size, 0)  # the offset stays
    found = {}
    for phase, part in (("run", data[:end_of_run]), ("teardown", data[end_of_run:])):
        lines = part.decode(errors="replace").splitlines()
        found[phase] = [line for line in lines if line.strip()][:10]
    return found


def probe(server: subprocess.Popen[str], lines: Lines) -> dict[str, Any] | None:
    """Ask a Python server what it holds now (it prints a probe line on SIGUSR1)."""
    if server.poll() is not None:
        return None
    server.send_signal(signal.SIGUSR1)
    try:
        found: dict[str, Any] = lines.next_json(10, "probe from the server")["probe"]
    except (TimeoutError, RuntimeError, KeyError):
        return None
    return found


def redis_pid(url: str) -> int | None:
    """redis-server's PID, from `INFO`, when that process is visible here; else None."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        pid = int(client.info("server")["process_id"])
    except (redis.exceptions.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()
    try:
        with open(f"/proc/{pid}/comm") as f:
            return pid if "redis" in f.read() else None
    except OSError:
        return None


def redis_unreachable(url: str) -> str | None:
    """Why Redis at `url` cannot be used, or None when it answers."""
    try:
        import redis
    except ImportError:
        return "the redis package is missing (pip install 'roomcast[redis]')"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        return f"no Redis at {url} ({exc})"
    finally:
        client.close()
    return None


def drop_prefix(url: str, prefix: str) -> int | None:
    """Delete the keys under `prefix` in Redis; return how many there were (None: unknown)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    except (redis.exceptions.RedisError, OSError) as exc:
        print(f"could not delete the Redis keys {prefix}*: {exc}", file=sys.stderr)
        return None
    finally:
        client.close()


def per_cpu_second(result: dict[str, Any]) -> float | None:
    """Deliveries per second of server CPU: steadier than deliveries/s on a shared machine
    (a Python server is CPU-bound, so what another process takes lowers both alike)."""
    cpu = result["server_cpu"] / 100
    return result["deliveries_per_s"] / cpu if cpu > 0.05 else None


def sample(
    pids: Sequence[int], extra: int | None = None
) -> tuple[float, list[float], float | None, float | None]:
    """The time, the CPU seconds of each of `pids`, of `extra` (a process that may not be
    there: None then) and the machine's busy seconds."""
    extra_cpu = None
    if extra is not None:
        try:
            extra_cpu = cpu_seconds(extra)
        except Exception:  # gone, or not ours to read
            extra_cpu = None
    cpus = [cpu_seconds(pid) for pid in pids]
    return time.perf_counter(), cpus, extra_cpu, machine_busy_seconds()


def start_profiler(
    directory: str | None, spec: str, clients: int, pid: int, command: list[str]
) -> list[subprocess.Popen[bytes]]:
    """Start py-spy on the server `pid` (Python servers only), writing into `directory`."""
    if not directory or command[0] != sys.executable:
        return []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("--profile needs py-spy (pip install py-spy)", file=sys.stderr)
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    stem = str(Path(directory) / f"{spec.replace('@', '_')}-{clients}")
    common = ["record", "--pid", str(pid), "--nonblocking", "--rate", "250"]
    return [
        subprocess.Popen([py_spy, *common, "-f", fmt, "-o", f"{stem}.{ext}"], **QUIET)
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt"))
    ]


QUIET: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def stop_profiler(profilers: list[subprocess.Popen[bytes]]) -> None:
    for proc in profilers:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    for proc in profilers:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(results: Sequence[dict[str, Any]], servers: Sequence[str], stalled: int = 0) -> str:
    """The table of one run, with ratios against raw python-socketio at the same C (and the
    same number of stalled clients); then the tables of the servers over Redis and of the
    stalled clients, when the run had them."""
    base = {(r["clients"], r.get("stalled", 0)): r for r in results if r["server"] == BASELINE}
    rows = []
    for r in results:
        ref = base.get((r["clients"], r.get("stalled", 0)))
        rows.append(
            [
                r["clients"],
                label(r["server"], r.get("stalled", 0)),
                *against(r, ref),
                r["messages_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["server_cpu"],
                r["client_cpu"],
                r.get("other_cpu"),
                r["lost"] + r["given_up"],
            ]
        )
    headers = [
        "C",
        "server",
        "deliveries/s",
        f"x {BASELINE}",
        "per server CPU-s",
        "x",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "server CPU%",
        "generator CPU%",
        "other CPU%",
        "lost",
    ]
    text = table(headers, rows)
    sizes = sorted({r["clients"] for r in results})
    if len(sizes) > 1:
        by = {
            (label(r["server"], r.get("stalled", 0)), r["clients"]): r["deliveries_per_s"]
            for r in results
        }
        lo, hi = sizes[0], sizes[-1]
        names = [label(spec, n) for spec, n in variants(servers, stalled)]
        scaling = [
            [s, by.get((s, lo)), by.get((s, hi)), by[(s, hi)] / by[(s, lo)]]
            for s in names
            if by.get((s, lo)) and by.get((s, hi))
        ]
        text += "\n\n" + table(
            ["server", f"deliveries/s C={lo}", f"C={hi}", f"C={hi} / C={lo}"], scaling
        )
    if any(r.get("processes") for r in results):
        text += "\n\n" + redis_report(results)
    if any(r.get("stalled") for r in results):
        text += "\n\n" + stalled_report(results)
    if any(r.get("history") for r in results):
        text += "\n\n" + history_report(results)
    if any(r.get("deflate") for r in results):
        text += "\n\n" + deflate_report(results)
    return text


def against(r: dict[str, Any], ref: dict[str, Any] | None) -> list[Any]:
    """`r`'s deliveries/s and deliveries per server CPU-second, each followed by its ratio to
    `ref`'s (`None` without `ref`)."""
    per_cpu = per_cpu_second(r)
    ref_per_cpu = per_cpu_second(ref) if ref else None
    return [
        r["deliveries_per_s"],
        r["deliveries_per_s"] / ref["deliveries_per_s"] if ref else None,
        per_cpu,
        per_cpu / ref_per_cpu if per_cpu and ref_per_cpu else None,
    ]


def history_report(results: Sequence[dict[str, Any]]) -> str:
    """The servers that keep room `chat`'s history, against the same server without it at
    the same C (and the same stalled clients) in the same run."""
    plain = {
        (r["clients"], r["server"], r.get("stalled", 0)): r
        for r in results
        if not r.get("history")
    }
    rows, notes = [], []
    for r in results:
        if not r.get("history"):
            continue
        name = label(r["server"], r.get("stalled", 0))
        ref = plain.get((r["clients"], without_history(r["server"]), r.get("stalled", 0)))
        kept = [p.get("history_kept") for p in r.get("probes") or [] if p]
        rows.append(
            [
                r["clients"],
                name,
                *against(r, ref),
                r["messages_per_s"],
                r["p50_ms"],
                ref["p50_ms"] if ref else None,
                r["server_cpu"],
                r["client_cpu"],
                r.get("other_cpu"),
                kept[0] if kept else None,
                r["lost"] + r["given_up"],
            ]
        )
        if ref is None:
            notes.append(f"{name} C={r['clients']}: no {without_history(r['server'])} run")
        for found in r.get("probes") or []:
            if found and found.get("history_error"):
                notes.append(f"{name} C={r['clients']}: {found['history_error']}")
    headers = [
        "C",
        "server",
        "deliveries/s",
        "x without",
        "per server CPU-s",
        "x",
        "msgs/s",
        "p50 ms",
        "p50 ms without",
        "server CPU%",
        "generator CPU%",
        "other CPU%",
        "kept",
        "lost",
    ]
    text = (
        "room history: the servers keeping room chat's broadcasts (keep_history, size=100), "
        "against the same\nserver without it at the same C (x without; x: per server "
        "CPU-second, all processes); kept: the\nentries room chat's history held at the end "
        "of the measurement\n\n"
    )
    text += table(headers, rows)
    if notes:
        text += "\n" + "\n".join(f"note: {note}" for note in notes)
    return text


def cpu_per_delivery(result: dict[str, Any]) -> float | None:
    """Microseconds of server CPU per delivery (1e6 / `per_cpu_second`; None where that is)."""
    per_cpu = per_cpu_second(result)
    return 1e6 / per_cpu if per_cpu else None


def direct_writes(result: dict[str, Any]) -> int | None:
    """roomcast's `direct_writes` at the end of the measurement, over all the server's
    processes (None: not known: not roomcast, or a probe that did not answer)."""
    found = [p.get("direct_writes") if p else None for p in result.get("probes") or []]
    known: list[int] = [n for n in found if n is not None]
    return sum(known) if found and len(known) == len(found) else None


def deflate_report(results: Sequence[dict[str, Any]]) -> str:
    """The servers with per-message deflate (`@uvicorn-deflate`), against the same server
    without a front at the same C (and the same stalled clients) in the same run."""
    plain = {
        (r["clients"], r["server"], r.get("stalled", 0)): r
        for r in results
        if not r.get("deflate")
    }
    rows, notes = [], []
    for r in results:
        if not r.get("deflate"):
            continue
        name = label(r["server"], r.get("stalled", 0))
        ref = plain.get((r["clients"], without_deflate(r["server"]), r.get("stalled", 0)))
        on, off = cpu_per_delivery(r), cpu_per_delivery(ref) if ref else None
        rows.append(
            [
                r["clients"],
                name,
                ref["deliveries_per_s"] if ref else None,
                r["deliveries_per_s"],
                off,
                on,
                on / off if on and off else None,
                ref["client_cpu"] if ref else None,
                r["client_cpu"],
                direct_writes(ref) if ref else None,
                direct_writes(r),
                ref.get("deflated") if ref else None,
                r.get("deflated"),
                held(ref)["rss_mb"] if ref else None,
                held(r)["rss_mb"],
            ]
        )
        if ref is None:
            notes.append(f"{name} C={r['clients']}: no {without_deflate(r['server'])} run")
        if r.get("deflated") is not None and r["deflated"] < r["clients"]:
            notes.append(
                f"{name} C={r['clients']}: deflate negotiated by {r['deflated']} of "
                f"{r['clients']} clients only"
            )
    headers = [
        "C",
        "server",
        "deliveries/s off",
        "on",
        "CPU us/delivery off",
        "on",
        "x",
        "generator CPU% off",
        "on",
        "direct writes off",
        "on",
        "deflated off",
        "on",
        "server RSS MB off",
        "on",
    ]
    text = (
        "per-message deflate: each server on @uvicorn-deflate (on), its clients offering "
        "deflate, against the\nsame server without a front (off) at the same C; CPU "
        "us/delivery: server CPU microseconds per\ndelivery (x: on / off); direct writes: "
        "roomcast's fast path, from the server's start to the end\nof the measurement; "
        "deflated: the C clients whose websocket negotiated permessage-deflate; server RSS: "
        "at the\nend of the measurement\n\n"
    )
    text += table(headers, rows)
    if notes:
        text += "\n" + "\n".join(f"note: {note}" for note in notes)
    return text


def redis_report(results: Sequence[dict[str, Any]]) -> str:
    """The servers of several processes over Redis, against one process at the same C."""
    single = {
        (r["clients"], r["server"]): r
        for r in results
        if not r.get("processes") and not r.get("stalled")
    }
    rows, notes = [], []
    for r in results:
        if not r.get("processes"):
            continue
        name = label(r["server"], r.get("stalled", 0))
        ref = single.get((r["clients"], single_process(r["server"])))
        groups = r.get("groups") or []
        rows.append(
            [
                r["clients"],
                name,
                *against(r, ref),
                " + ".join(f"{cpu:.0f}" for cpu in r["server_cpus"]),
                r.get("redis_cpu"),
                " / ".join("-" if g["p50_ms"] is None else f"{g['p50_ms']:.1f}" for g in groups)
                or None,
                r.get("redis_keys_left"),
                r["lost"] + r["given_up"],
            ]
        )
        if ref is None:
            notes.append(
                f"{name} C={r['clients']}: no {single_process(r['server'])} run to compare"
            )
        if r.get("redis_pid") is None:
            notes.append(f"{name} C={r['clients']}: redis-server's PID is not visible here")
        for i, found in enumerate(r.get("probes") or []):
            if found and found.get("redis_available") is False:
                notes.append(f"{name} C={r['clients']}: server {i + 1} had lost Redis at the end")
        for i, log in enumerate(r.get("server_log") or []):
            for phase in ("run", "teardown"):
                lost = [line for line in log.get(phase, []) if "Redis is unreachable" in line]
                if lost:
                    notes.append(
                        f"{name} C={r['clients']}: server {i + 1} logged during the {phase}: "
                        f"{lost[0]}" + (f" (and {len(lost) - 1} more)" if len(lost) > 1 else "")
                    )
    headers = [
        "C",
        "server",
        "deliveries/s",
        "x 1 process",
        "per server CPU-s",
        "x",
        "CPU% of each server",
        "redis CPU%",
        "p50 ms by server",
        "keys left",
        "lost",
    ]
    text = (
        "several processes sharing rooms through Redis (x: against one roomcast process at "
        "the same C;\nper server CPU-s counts every process; p50 of each server's clients, the "
        "sender's first;\nkeys left: under the run's prefix after the servers stopped)\n\n"
    )
    text += table(headers, rows)
    if notes:
        text += "\n" + "\n".join(f"note: {note}" for note in notes)
    return text


def held(r: dict[str, Any]) -> dict[str, Any]:
    """What the server's processes held at the end of the measurement, summed (None: not
    known: a Node server, or a probe that did not answer)."""
    probes = r.get("probes") or []
    memory = r.get("memory_kb") or []
    known = [p for p in probes if p] if probes and all(probes) else []
    stats = [p["stats"] for p in known if p.get("stats")]

    def total(values: Sequence[int]) -> float:
        return sum(values) / 1024

    return {
        "rss_mb": total([m["rss"] for m in memory]) if memory and all(memory) else None,
        "peak_mb": total([m["peak"] for m in memory]) if memory and all(memory) else None,
        "connections": sum(p["connections"] for p in known) if known else None,
        "largest_queue": max(p["largest_queue"] for p in known) if known else None,
        "shed": sum(st["slow_consumers_disconnected"] for st in stats) if stats else None,
    }


def stalled_report(results: Sequence[dict[str, Any]]) -> str:
    """The C normal clients' deliveries/s with stalled clients against without, and what the
    server held at the end of each."""
    alone = {(r["clients"], r["server"]): r for r in results if not r.get("stalled")}
    rows = []
    for r in results:
        if not r.get("stalled"):
            continue
        ref = alone.get((r["clients"], r["server"]))
        now, before = held(r), held(ref) if ref else {}
        per_cpu = per_cpu_second(r)
        ref_per_cpu = per_cpu_second(ref) if ref else None
        rows.append(
            [
                r["clients"],
                r["server"],
                r["stalled"],
                ref["deliveries_per_s"] if ref else None,
                r["deliveries_per_s"],
                r["deliveries_per_s"] / ref["deliveries_per_s"] if ref else None,
                per_cpu / ref_per_cpu if per_cpu and ref_per_cpu else None,
                before.get("rss_mb"),
                now["rss_mb"],
                now["peak_mb"],
                now["connections"],
                now["largest_queue"],
                now["shed"],
                r["lost"] + r["given_up"],
            ]
        )
    headers = [
        "C",
        "server",
        "stalled",
        "deliveries/s alone",
        "with stalled",
        "x alone",
        "per CPU-s x",
        "RSS MB alone",
        "RSS MB with",
        "peak RSS MB",
        "open conns",
        "longest queue",
        "shed",
        "lost",
    ]
    text = (
        "stalled clients: deliveries/s of the C normal clients without, then with, clients that "
        "join and stop reading\n(per CPU-s x: the same ratio per server CPU-second); the "
        "server's memory (VmRSS; peak: VmHWM) and what it held\nat the end of each "
        "measurement (open conns, longest Engine.IO queue; shed: roomcast's\n"
        "app.stats.slow_consumers_disconnected)\n\n"
    )
    return text + table(headers, rows)


def spread(
    runs: Sequence[Sequence[dict[str, Any]]], servers: Sequence[str], stalled: int = 0
) -> str:
    """Across runs: the best and worst deliveries/s, and each run's ratio to the baseline."""
    rows = []
    sizes = sorted({r["clients"] for results in runs for r in results})
    for clients in sizes:
        for spec, n in variants(servers, stalled):
            rates, ratios = [], []
            for results in runs:
                by = {
                    (r["server"], r.get("stalled", 0)): r["deliveries_per_s"]
                    for r in results
                    if r["clients"] == clients
                }
                if (spec, n) in by:
                    rates.append(by[(spec, n)])
                    if by.get((BASELINE, n)):
                        ratios.append(f"{by[(spec, n)] / by[(BASELINE, n)]:.2f}")
            if rates:
                name = label(spec, n)
                rows.append([clients, name, max(rates), min(rates), " ".join(ratios) or None])
    headers = ["C", "server", "best deliveries/s", "worst", f"x {BASELINE} in each run"]
    text = table(headers, rows)
    if any(keeps_history(spec) for spec in servers):
        text += "\n\n" + history_spread(runs, servers, stalled)
    if any(deflates(spec) for spec in servers):
        text += "\n\n" + deflate_spread(runs, servers, stalled)
    return text


def pairs(
    runs: Sequence[Sequence[dict[str, Any]]], clients: int, spec: str, ref: str, stalled: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The results of `spec` and of `ref` at `clients` (and `stalled`), in each run that has
    both."""
    found = []
    for results in runs:
        by = {(r["server"], r.get("stalled", 0)): r for r in results if r["clients"] == clients}
        mine, theirs = by.get((spec, stalled)), by.get((ref, stalled))
        if mine is not None and theirs is not None:
            found.append((mine, theirs))
    return found


Ratio = Callable[[dict[str, Any], dict[str, Any]], float | None]


def ratio_of(metric: Callable[[dict[str, Any]], float | None]) -> Ratio:
    """A run's `metric` against its reference's (None where either is unknown)."""

    def ratio(mine: dict[str, Any], ref: dict[str, Any]) -> float | None:
        a, b = metric(mine), metric(ref)
        return a / b if a and b else None

    return ratio


def ratio_spread(
    runs: Sequence[Sequence[dict[str, Any]]],
    servers: Sequence[str],
    stalled: int,
    title: str,
    varied: Callable[[str], bool],
    reference: Callable[[str], str],
    ratios: Sequence[tuple[str, Ratio]],
) -> str:
    """Across runs: for each server `varied` picks, each run's ratios to `reference(server)` in
    the same run (a column per `ratios` entry, named by it), and their medians."""
    rows = []
    sizes = sorted({r["clients"] for results in runs for r in results})
    for clients in sizes:
        for spec, n in variants(servers, stalled):
            if not varied(spec):
                continue
            found = pairs(runs, clients, spec, reference(spec), n)
            if not found:
                continue
            row: list[Any] = [clients, label(spec, n)]
            for _, ratio in ratios:
                xs = [x for mine, ref in found if (x := ratio(mine, ref))]
                row += [" ".join(f"{x:.2f}" for x in xs) or None]
                row += [statistics.median(xs) if xs else None]
            rows.append(row)
    headers = ["C", "server", *(h for header, _ in ratios for h in (header, "median"))]
    return f"{title}\n\n{table(headers, rows)}"


def deliveries_per_s(result: dict[str, Any]) -> float:
    """A result's deliveries/s."""
    value: float = result["deliveries_per_s"]
    return value


def history_spread(
    runs: Sequence[Sequence[dict[str, Any]]], servers: Sequence[str], stalled: int = 0
) -> str:
    """Across runs: each run's ratio of a history server to the same server without it, in
    deliveries/s and per server CPU-second, and their medians."""
    return ratio_spread(
        runs,
        servers,
        stalled,
        "room history, against the same server without it",
        keeps_history,
        without_history,
        [
            ("deliveries/s x without, each run", ratio_of(deliveries_per_s)),
            ("per server CPU-s x, each run", ratio_of(per_cpu_second)),
        ],
    )


def deflate_spread(
    runs: Sequence[Sequence[dict[str, Any]]], servers: Sequence[str], stalled: int = 0
) -> str:
    """Across runs: each run's ratio of a deflate server to the same server without it, in
    server CPU per delivery and in deliveries/s, and their medians."""
    return ratio_spread(
        runs,
        servers,
        stalled,
        "per-message deflate, against the same server without a front (off)",
        deflates,
        without_deflate,
        [
            ("CPU us/delivery x off, each run", ratio_of(cpu_per_delivery)),
            ("deliveries/s x off, each run", ratio_of(deliveries_per_s)),
        ],
    )


def plot(
    runs: Sequence[Sequence[dict[str, Any]]],
    servers: Sequence[str],
    path: str,
    note: str,
    stalled: int = 0,
) -> None:
    """Save a PNG of deliveries/s against C, one line per server: the best of the runs
    (a shared machine only ever slows a run down), with a tick for each run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for spec, n in variants(servers, stalled):
        points: dict[int, list[float]] = {}
        for results in runs:
            for r in results:
                if r["server"] == spec and r.get("stalled", 0) == n:
                    points.setdefault(r["clients"], []).append(r["deliveries_per_s"])
        if not points:
            continue
        sizes = sorted(points)
        best = [max(points[c]) for c in sizes]
        (line,) = ax.plot(sizes, best, marker="o", label=label(spec, n))
        for c in sizes:
            if len(points[c]) > 1:
                ax.plot([c] * len(points[c]), points[c], "_", color=line.get_color(), ms=12)
    ax.set_xscale("log")
    ax.set_xlabel("clients in the room (C)")
    ax.set_ylabel("deliveries/s")
    ax.set_ylim(bottom=0)
    sizes = sorted({r["clients"] for results in runs for r in results})
    ax.set_xticks(sizes, [str(c) for c in sizes])
    ax.minorticks_off()
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    n = len(runs)
    ax.set_title(
        "Room broadcast over websockets on 127.0.0.1"
        + (f" (best of {n} runs; ticks: each run)" if n > 1 else ""),
        fontsize=11,
    )
    fig.text(0.01, 0.01, note, fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path)
    print(f"plot saved to {path}")


def describe(machine: str, args: dict[str, Any]) -> str:
    client = "socket.io-client" if args.get("client", "socket.io") == "socket.io" else "raw ws"
    load = f"{args['rate']:,.0f} deliveries/s offered" if args.get("rate") else "window"
    return (
        f"{machine}\nGenerator: Node, {client} clients, {load}; Python servers on "
        f"{args.get('loop', 'asyncio')}, uvicorn ws=websockets-sansio without per-message "
        "deflate unless named."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (benchmarks/fanout.py) for the method.",
    )
    parser.add_argument("--sizes", default="50,200,1000", help="numbers of clients C")
    parser.add_argument("--servers", default="roomcast,python-socketio,node")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument(
        "--inflight", type=int, default=16000, help="deliveries in flight (window x C)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="offered deliveries/s (fixed rate) instead of the window; 0: window",
    )
    parser.add_argument("--batch", type=int, default=50, help="connections opened at a time")
    parser.add_argument(
        "--payload", type=int, default=64, help="characters of text in each message"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of the whole sweep")
    parser.add_argument(
        "--client",
        choices=["socket.io", "raw"],
        default="socket.io",
        help="generator's client: socket.io-client, or a minimal one over `ws` (lighter)",
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="Python servers' loop"
    )
    parser.add_argument(
        "--stalled",
        type=int,
        default=0,
        metavar="N",
        help="also run each server with N more clients that join and stop reading",
    )
    parser.add_argument(
        "--redis-url", default=REDIS_URL, help="the Redis of the roomcast-redisN servers"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--profile", metavar="DIR", help="record Python servers with py-spy")
    parser.add_argument("--plot", metavar="PATH", help="save a PNG of deliveries/s against C")
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="run nothing: print the tables (and --plot) of results saved with --json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        runs, saved_args = saved["runs"], saved["args"]
        servers = [s for s in saved_args["servers"].split(",") if s]
        stalled = saved_args.get("stalled", 0)
        for i, results in enumerate(runs):
            print(f"run {i + 1} of {len(runs)}\n\n{report(results, servers, stalled)}\n")
        if len(runs) > 1:
            print(f"all {len(runs)} runs\n\n{spread(runs, servers, stalled)}")
        if args.plot:
            note = describe(saved["machine"], saved_args)
            plot(runs, servers, args.plot, note, stalled)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    servers = [s for s in args.servers.split(",") if s]
    for spec in servers:
        try:
            parse_server(spec)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    if shutil.which("node") is None:
        parser.error("the load generator needs Node.js: `node` is not on PATH")
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error("--loop uvloop needs uvloop (pip install uvloop)")
    if not (NODE_MODULES / "socket.io-client").is_dir():
        parser.error("Node packages missing: run `npm ci --prefix benchmarks` first")
    if args.stalled < 0:
        parser.error("--stalled must be 0 or more")
    if any(redis_processes(spec) for spec in servers):
        why = redis_unreachable(args.redis_url)
        if why:
            parser.error(f"the roomcast-redisN servers need Redis: {why} (see --redis-url)")
    raise_open_files_limit()

    print(f"fanout: {machine()}")
    load = (
        f"offered {args.rate:,.0f} deliveries/s"
        if args.rate
        else f"window of ~{args.inflight:,} deliveries in flight"
    )
    print(
        f"sizes {sizes}, warm-up {args.warmup:g} s, measured {args.duration:g} s, {load}, "
        f"{args.client} clients, Python servers on {args.loop}"
        + (f", then again with {args.stalled} stalled clients" if args.stalled else "")
    )
    runs: list[list[dict[str, Any]]] = []
    for run in range(args.repeat):
        results = []
        for clients in sizes:
            for spec, stalled in variants(servers, args.stalled):
                result = run_one(spec, clients, args, stalled)
                results.append(result)
                print(
                    f"  {label(spec, stalled)} C={clients}: "
                    f"{result['deliveries_per_s']:,.0f} deliveries/s",
                    file=sys.stderr,
                    flush=True,
                )
        runs.append(results)
        title = f"run {run + 1} of {args.repeat}" if args.repeat > 1 else "results"
        print(f"\n{title}\n\n{report(results, servers, args.stalled)}", flush=True)
    if args.repeat > 1:
        print(f"\nall {args.repeat} runs\n\n{spread(runs, servers, args.stalled)}")
    write_json(args.json, {"machine": machine(), "args": vars(args), "runs": runs})
    if args.plot:
        plot(runs, servers, args.plot, describe(machine(), vars(args)), args.stalled)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
