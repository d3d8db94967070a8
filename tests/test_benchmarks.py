"""The benchmarks still run: each at a tiny size, as a subprocess, asserting only that it
prints its table and delivered something (no timing is asserted: this machine is shared)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .needs import missing
from .redis_support import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parents[1]
NODE_PACKAGES = ROOT / "benchmarks" / "node_modules"


def run_benchmark(tmp_path: Path, name: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Run `python -m benchmarks.NAME ARGS --json FILE`; return its stdout and the JSON."""
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout, json.loads(out.read_text())


def require_node() -> None:
    """Skip without Node and the benchmarks' Node packages; under CI their absence fails."""
    absent = []
    if shutil.which("node") is None:
        absent.append("`node` is not on PATH")
    if (
        not (NODE_PACKAGES / "socket.io").is_dir()
        or not (NODE_PACKAGES / "socket.io-client").is_dir()
    ):
        absent.append("benchmarks/node_modules is missing (npm ci --prefix benchmarks)")
    if absent:
        missing("; ".join(absent))


@pytest.mark.parametrize(
    ("servers", "client"), [("roomcast,python-socketio", "socket.io"), ("node", "raw")]
)
def test_fanout_runs(tmp_path: Path, servers: str, client: str) -> None:
    require_node()
    stdout, data = run_benchmark(
        tmp_path,
        "fanout",
        *("--sizes", "5", "--duration", "0.5", "--warmup", "0.3"),
        *("--servers", servers, "--client", client),
    )
    assert "deliveries/s" in stdout
    (results,) = data["runs"]
    assert [r["server"] for r in results] == servers.split(",")
    for result in results:
        assert result["deliveries"] > 0
        assert f"{result['server']} " in stdout
    if servers.startswith("roomcast"):
        assert "x python-socketio" in stdout


def test_fanout_over_redis_runs(tmp_path: Path) -> None:
    """Two roomcast processes sharing room `chat` through Redis, the clients split across
    them: the clients of each server receive (the second one's only through Redis)."""
    require_node()
    require_redis()
    stdout, data = run_benchmark(
        tmp_path,
        "fanout",
        *("--sizes", "5", "--duration", "0.5", "--warmup", "0.3"),
        *("--servers", "roomcast,roomcast-redis2", "--client", "raw"),
        *("--redis-url", REDIS_URL),
    )
    assert "deliveries/s" in stdout
    assert "x 1 process" in stdout
    (results,) = data["runs"]
    assert [r["server"] for r in results] == ["roomcast", "roomcast-redis2"]
    for result in results:
        assert result["deliveries"] > 0
        assert f"{result['server']} " in stdout
    groups = results[1]["groups"]
    assert len(groups) == 2
    assert all(group["deliveries"] > 0 for group in groups)


def test_fanout_with_stalled_clients_runs(tmp_path: Path) -> None:
    """Each server runs without, then with, clients that join and stop reading."""
    require_node()
    stdout, data = run_benchmark(
        tmp_path,
        "fanout",
        *("--sizes", "5", "--duration", "0.5", "--warmup", "0.3"),
        *("--servers", "roomcast,python-socketio", "--client", "raw", "--stalled", "2"),
    )
    assert "deliveries/s" in stdout
    assert "x alone" in stdout
    (results,) = data["runs"]
    assert [(r["server"], r["stalled"]) for r in results] == [
        ("roomcast", 0),
        ("roomcast", 2),
        ("python-socketio", 0),
        ("python-socketio", 2),
    ]
    for result in results:
        assert result["deliveries"] > 0
    assert "roomcast +2 stalled " in stdout
    assert "python-socketio +2 stalled " in stdout


@pytest.mark.parametrize("servers", ["roomcast,roomcast+history", "roomcast-redis2+history"])
def test_fanout_with_history_runs(tmp_path: Path, servers: str) -> None:
    """A server keeping room `chat`'s history (`+history`), in one process or two over
    Redis: its clients receive, the room's history holds entries at the end, and the table
    compares it with the same server without history when that ran too."""
    require_node()
    extra: tuple[str, ...] = ()
    if "redis" in servers:
        require_redis()
        extra = ("--redis-url", REDIS_URL)
    stdout, data = run_benchmark(
        tmp_path,
        "fanout",
        *("--sizes", "5", "--duration", "0.5", "--warmup", "0.3"),
        *("--servers", servers, "--client", "raw", *extra),
    )
    assert "room history" in stdout
    (results,) = data["runs"]
    assert [(r["server"], r["history"]) for r in results] == [
        (spec, spec.endswith("+history")) for spec in servers.split(",")
    ]
    for result in results:
        assert result["deliveries"] > 0
        kept = [probe.get("history_kept") for probe in result["probes"]]
        if result["history"]:
            assert all(0 < n <= 100 for n in kept), kept  # size=100
        else:
            assert kept == [None]
    if servers.startswith("roomcast,"):
        assert "x without" in stdout


@pytest.mark.parametrize("client", ["socket.io", "raw"])
def test_fanout_with_per_message_deflate_runs(tmp_path: Path, client: str) -> None:
    """A server with uvicorn's defaults (`@uvicorn-deflate`) and clients that offer deflate,
    against the same server without: every client negotiated it there and none here, the
    fast path served both, and the table compares them."""
    require_node()
    stdout, data = run_benchmark(
        tmp_path,
        "fanout",
        *("--sizes", "5", "--duration", "0.5", "--warmup", "0.3"),
        *("--servers", "roomcast,roomcast@uvicorn-deflate", "--client", client),
    )
    assert "per-message deflate" in stdout
    (results,) = data["runs"]
    assert [(r["server"], r["deflate"], r["deflated"]) for r in results] == [
        ("roomcast", False, 0),
        ("roomcast@uvicorn-deflate", True, 5),
    ]
    for result in results:
        assert result["deliveries"] > 0
        (probe,) = result["probes"]
        assert probe["direct_writes"] > 0


def test_recovery_runs(tmp_path: Path) -> None:
    """Clients dropped at once, events sent while they are away, all back: every client
    recovers, with every missed event in order, once; then memory per kept message and per
    absent session, and the cost of a claim."""
    require_node()
    stdout, data = run_benchmark(tmp_path, "recovery", "--quick")
    assert "replay events/s" in stdout
    assert "bytes each" in stdout
    assert "us per claim" in stdout
    runs = data["recovery"]
    assert [(r["clients"], r["messages"]) for r in runs] == [(20, 0), (20, 10)]
    for run in runs:
        n, m = run["clients"], run["messages"]
        assert run["recovered"] == run["same_id"] == run["complete"] == n
        assert run["duplicates"] == run["out_of_order"] == run["missing"] == 0
        assert run["replayed"] == n * m
        assert run["burst_stats"]["absent"] == n
        assert run["burst_stats"]["logged"] == m + 1  # and the `hello` before the drop
        assert run["stats"]["after"]["absent"] == 0
    memory = data["memory"]
    assert memory["entry_bytes"] > memory["entry_data_bytes"] > 0
    assert memory["absent_bytes"] > memory["absent_session_bytes"] > 0
    assert [r["log_entries"] for r in data["claims"]] == [100, 1000]
    assert all(r["us_per_claim"] > 0 for r in data["claims"])


def test_core_runs(tmp_path: Path) -> None:
    stdout, data = run_benchmark(
        tmp_path, "core", "--sizes", "10,100", "--deliveries", "2000", "--repeat", "1"
    )
    assert "bare loop deliveries/s" in stdout
    assert [r["size"] for r in data["results"]] == [10, 100]
    for result in data["results"]:
        assert set(result["deliveries_per_s"]) == {"bare", "bare set", "roomcast", "TestClient"}
        assert all(rate > 0 for rate in result["deliveries_per_s"].values())


def test_churn_runs(tmp_path: Path) -> None:
    stdout, data = run_benchmark(
        tmp_path, "churn", "--sizes", "100,200", "--ops", "50", "--repeat", "1"
    )
    assert "bytes/connection" in stdout
    assert [r["size"] for r in data["results"]] == [100, 200]
    for result in data["results"]:
        assert result["ops_counted"] > 0
        assert result["bytes_per_connection"] > 0
        assert all(us > 0 for us in result["us_per_op"].values())


def test_presence_runs(tmp_path: Path) -> None:
    """Join storms, presence(), memory per track and calls, in memory and over Redis (two
    apps; the calls' other app in a subprocess): every member reaches the room's state."""
    require_redis()
    stdout, data = run_benchmark(tmp_path, "presence", "--quick", "--redis-url", REDIS_URL)
    assert "members agreeing" in stdout
    assert "bytes per track" in stdout
    storms = data["storm"]
    assert [(r["backend"], r["size"]) for r in storms] == [
        ("memory", 50),
        ("memory", 100),
        ("redis", 50),
        ("redis", 100),
    ]
    for storm in storms:
        assert storm["agree"] == storm["present"] == storm["size"]
        assert storm["failed_calls"] == 0
        assert storm["diffs_min"] >= 1
        assert storm["converged_s"] > 0
    assert [(r["backend"], r["size"]) for r in data["presence"]] == [
        ("memory", 200),
        ("redis", 200),
    ]
    assert all(r["median_ms"] > 0 for r in data["presence"])
    assert data["memory"]["tracked_bytes_per_connection"] > 0
    calls = data["calls"]
    assert {(r["where"], r["answerer"], r["callers"]) for r in calls} == {
        (where, answerer, callers)
        for where in ("local", "other process")
        for answerer in ("async def", "sync def")
        for callers in (1, 10)
    }
    assert all(r["per_s"] > 0 for r in calls)
