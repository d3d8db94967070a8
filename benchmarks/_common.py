"""What the benchmarks share: plain-text tables, CPU time and memory of a process, limits, JSON
output."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:  # psutil is optional: /proc does the same on Linux.
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Format `rows` under `headers` as a plain-text table; numbers are right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(headers))
    ]

    def line(texts: Sequence[str]) -> str:
        parts = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, right in zip(texts, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (seconds) the process `pid` has used so far."""
    if psutil is not None:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int) -> dict[str, int] | None:
    """The resident memory of the process `pid` now (`rss`) and at its peak (`peak`, the high
    water mark), in kB, from /proc/PID/status; None where that cannot be read."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for text in f:
                key, _, value = text.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found["rss" if key == "VmRSS" else "peak"] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return found if len(found) == 2 else None


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores of this machine have spent busy (steal included), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user..steal; guest time is already in user
    return busy / os.sysconf("SC_CLK_TCK")


def raise_open_files_limit(wanted: int = 65536) -> int:
    """Raise this process's soft limit on open files towards `wanted`; return the new limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def machine() -> str:
    """One line saying what this ran on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for text in f:
                if text.startswith("model name"):
                    model = text.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` as JSON (no-op when `path` is None)."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` percentile (nearest rank) of already sorted values."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def fail(message: str) -> None:
    """Print `message` on stderr and exit with status 1."""
    print(message, file=sys.stderr)
    sys.exit(1)
