"""End-to-end room broadcast over real websockets on 127.0.0.1.

    .venv/bin/python -m benchmarks.fanout [--sizes 50,200,1000] [--duration 5]
        [--servers roomcast,python-socketio,node] [--repeat 1] [--json out.json]
        [--plot benchmarks/fanout.png]

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
`uvicorn` (the default, ws="websockets-sansio"), `uvicorn-websockets`, `uvicorn-wsproto` or
`aiohttp` (python-engineio's aiohttp mode), e.g. `--servers roomcast,roomcast@aiohttp`.
Needs `node` and `npm ci --prefix benchmarks`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ._common import (
    HERE,
    ROOT,
    cpu_seconds,
    machine,
    machine_busy_seconds,
    raise_open_files_limit,
    table,
    write_json,
)
from .fanout_server import FRONTS, KINDS

BASELINE = "python-socketio"
NODE_MODULES = HERE / "node_modules"


def parse_server(spec: str) -> list[str]:
    """The command that starts the server `spec` (see the module docstring)."""
    kind, _, front = spec.partition("@")
    if kind == "node" and not front:
        return ["node", str(HERE / "fanout_server.js")]
    if kind not in KINDS or (front and front not in FRONTS):
        raise argparse.ArgumentTypeError(
            f"unknown server {spec!r}: use node, or {'/'.join(KINDS)} optionally followed "
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
    ]


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


def run_one(spec: str, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start the server `spec` and a load generator with `clients`; return the measurements."""
    command = parse_server(spec)
    if args.loop != "asyncio" and command[0] == sys.executable:
        command += ["--loop", args.loop]
    with (
        tempfile.TemporaryFile("w+") as server_err,
        tempfile.TemporaryFile("w+") as client_err,
    ):
        server = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=server_err, text=True
        )
        client: subprocess.Popen[str] | None = None
        try:
            port = Lines(server.stdout).next_json(30, "port from the server")["port"]  # type: ignore[arg-type]
            client = subprocess.Popen(
                [
                    "node",
                    str(HERE / "fanout_client.js"),
                    *("--url", f"http://127.0.0.1:{port}"),
                    *("--clients", str(clients)),
                    *("--warmup", str(args.warmup)),
                    *("--duration", str(args.duration)),
                    *("--inflight", str(args.inflight)),
                    *("--batch", str(args.batch)),
                    *("--rate", str(args.rate)),
                    *("--client", args.client),
                ],
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=client_err,
                text=True,
            )
            lines = Lines(client.stdout)  # type: ignore[arg-type]
            connected = lines.next_json(60 + clients * 0.1, "connections")
            profiler = start_profiler(args.profile, spec, clients, server.pid, command)
            lines.next_json(args.warmup + 30, "start of the measurement")
            before = sample(server.pid, client.pid)
            lines.next_json(args.duration + 30, "end of the measurement")
            after = sample(server.pid, client.pid)
            stop_profiler(profiler)
            result = lines.next_json(60, "results")
            client.wait(30)
        except Exception as exc:
            message = f"{spec} with {clients} clients failed: {exc}"
            if client is not None:
                stop(client)
                message += f"\n--- load generator stderr ---\n{tail(client_err)}"
            stop(server)
            message += f"\n--- server stderr ---\n{tail(server_err)}"
            raise RuntimeError(message) from exc
        finally:
            if client is not None:
                stop(client)
            stop(server)
    wall = after[0] - before[0]
    server_cpu = after[1] - before[1]
    client_cpu = after[2] - before[2]
    other = None
    if after[3] is not None and before[3] is not None:
        other = max(0.0, 100 * (after[3] - before[3] - server_cpu - client_cpu) / wall)
    result.update(
        server=spec,
        server_cpu=100 * server_cpu / wall,
        client_cpu=100 * client_cpu / wall,
        other_cpu=other,
        ramp_seconds=connected["seconds"],
    )
    return result


def per_cpu_second(result: dict[str, Any]) -> float | None:
    """Deliveries per second of server CPU: steadier than deliveries/s on a shared machine
    (a Python server is CPU-bound, so what another process takes lowers both alike)."""
    cpu = result["server_cpu"] / 100
    return result["deliveries_per_s"] / cpu if cpu > 0.05 else None


def sample(server: int, client: int) -> tuple[float, float, float, float | None]:
    return (time.perf_counter(), cpu_seconds(server), cpu_seconds(client), machine_busy_seconds())


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


def report(results: Sequence[dict[str, Any]], servers: Sequence[str]) -> str:
    """The table of one run, with ratios against raw python-socketio at the same C."""
    base = {r["clients"]: r for r in results if r["server"] == BASELINE}
    rows = []
    for r in results:
        ref = base.get(r["clients"])
        per_cpu = per_cpu_second(r)
        ref_per_cpu = per_cpu_second(ref) if ref else None
        rows.append(
            [
                r["clients"],
                r["server"],
                r["deliveries_per_s"],
                r["deliveries_per_s"] / ref["deliveries_per_s"] if ref else None,
                per_cpu,
                per_cpu / ref_per_cpu if per_cpu and ref_per_cpu else None,
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
        by = {(r["server"], r["clients"]): r["deliveries_per_s"] for r in results}
        lo, hi = sizes[0], sizes[-1]
        scaling = [
            [s, by.get((s, lo)), by.get((s, hi)), by[(s, hi)] / by[(s, lo)]]
            for s in servers
            if by.get((s, lo)) and by.get((s, hi))
        ]
        text += "\n\n" + table(
            ["server", f"deliveries/s C={lo}", f"C={hi}", f"C={hi} / C={lo}"], scaling
        )
    return text


def spread(runs: Sequence[Sequence[dict[str, Any]]], servers: Sequence[str]) -> str:
    """Across runs: the best and worst deliveries/s, and each run's ratio to the baseline."""
    rows = []
    sizes = sorted({r["clients"] for results in runs for r in results})
    for clients in sizes:
        for spec in servers:
            rates, ratios = [], []
            for results in runs:
                by = {
                    r["server"]: r["deliveries_per_s"] for r in results if r["clients"] == clients
                }
                if spec in by:
                    rates.append(by[spec])
                    if by.get(BASELINE):
                        ratios.append(f"{by[spec] / by[BASELINE]:.2f}")
            if rates:
                rows.append([clients, spec, max(rates), min(rates), " ".join(ratios) or None])
    headers = ["C", "server", "best deliveries/s", "worst", f"x {BASELINE} in each run"]
    return table(headers, rows)


def plot(
    runs: Sequence[Sequence[dict[str, Any]]], servers: Sequence[str], path: str, note: str
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
    for spec in servers:
        points: dict[int, list[float]] = {}
        for results in runs:
            for r in results:
                if r["server"] == spec:
                    points.setdefault(r["clients"], []).append(r["deliveries_per_s"])
        if not points:
            continue
        sizes = sorted(points)
        best = [max(points[c]) for c in sizes]
        (line,) = ax.plot(sizes, best, marker="o", label=spec)
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
        f"{args.get('loop', 'asyncio')}, uvicorn ws=websockets-sansio unless named."
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
        for i, results in enumerate(runs):
            print(f"run {i + 1} of {len(runs)}\n\n{report(results, servers)}\n")
        if len(runs) > 1:
            print(f"all {len(runs)} runs\n\n{spread(runs, servers)}")
        if args.plot:
            plot(runs, servers, args.plot, describe(saved["machine"], saved_args))
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
    )
    runs: list[list[dict[str, Any]]] = []
    for run in range(args.repeat):
        results = []
        for clients in sizes:
            for spec in servers:
                result = run_one(spec, clients, args)
                results.append(result)
                print(
                    f"  {spec} C={clients}: {result['deliveries_per_s']:,.0f} deliveries/s",
                    file=sys.stderr,
                    flush=True,
                )
        runs.append(results)
        title = f"run {run + 1} of {args.repeat}" if args.repeat > 1 else "results"
        print(f"\n{title}\n\n{report(results, servers)}", flush=True)
    if args.repeat > 1:
        print(f"\nall {args.repeat} runs\n\n{spread(runs, servers)}")
    write_json(args.json, {"machine": machine(), "args": vars(args), "runs": runs})
    if args.plot:
        plot(runs, servers, args.plot, describe(machine(), vars(args)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
