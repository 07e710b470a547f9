"""What the benchmarks share: the figure they report, percentiles, machine load, rich tables, JSON."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=200)


@dataclass(frozen=True)
class Figure:
    """One measured figure beside the baseline measured in the same run.

    ``ratio`` is ``value / baseline_value``: for a time, below 1 means faster than the baseline;
    for a rate (unit ending in ``/s``), above 1 means more than the baseline.
    """

    benchmark: str
    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def figure(benchmark: str, name: str, value: float | None, unit: str, baseline: str,
           baseline_value: float | None) -> Figure | None:
    """A :class:`Figure`, or None when either side was not measured (skipped, failed, NaN)."""
    r = ratio(value, baseline_value)
    if r is None or value is None or baseline_value is None:
        return None
    return Figure(benchmark, name, float(value), unit, baseline, float(baseline_value), r)

# Message contents of about 250 bytes, as used throughout the benchmarks.
FILLER = ("The quick brown fox jumps over the lazy dog while the session keeps its history "
          "durable across restarts, host failures and scale-out; every turn is acknowledged "
          "only after the store has it. ")


def content(i: int, size: int = 250) -> str:
    """A deterministic ~``size``-byte message text."""
    head = f"message {i}: "
    body = (FILLER * (size // len(FILLER) + 2))[: size - len(head)]
    return head + body


def messages20(n: int = 20, size: int = 250) -> list[dict[str, Any]]:
    """``n`` alternating user/assistant messages with ~``size``-byte contents."""
    now = time.time()
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": content(i, size),
             "timestamp": now + i * 1e-3} for i in range(n)]


def pct(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no samples."""
    if not samples:
        return float("nan")
    s = sorted(samples)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def summary(lat_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean of latencies given in seconds, reported in microseconds."""
    if not lat_s:
        return {"n": 0, "p50_us": float("nan"), "p99_us": float("nan"), "mean_us": float("nan")}
    return {"n": len(lat_s), "p50_us": pct(lat_s, 50) * 1e6, "p99_us": pct(lat_s, 99) * 1e6,
            "mean_us": sum(lat_s) / len(lat_s) * 1e6}


def rss_bytes() -> int:
    """This process's resident memory now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


ON_OFF_COLUMNS = ["off p50", "on p50", "off p99", "on p99", "on/off p50"]


def on_off_row(label: str, res: dict[str, Any]) -> list[str]:
    """A table row for a feature measured off and on in the same run (``res["off"]`` and
    ``res["on"]`` are :func:`summary` dicts); stores the p50 ratio in ``res["ratio_p50"]``."""
    res["ratio_p50"] = ratio(res["on"]["p50_us"], res["off"]["p50_us"])
    return [label, fmt_us(res["off"]["p50_us"]), fmt_us(res["on"]["p50_us"]),
            fmt_us(res["off"]["p99_us"]), fmt_us(res["on"]["p99_us"]), fmt_ratio(res["ratio_p50"])]


def local_redis_url(prefix: str) -> str | None:
    """A store URL on the Redis at 127.0.0.1:6379 under a fresh ``prefix-<random>``; None when
    no Redis answers there (the benchmark then skips its Redis rows)."""
    import uuid

    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping()
    except Exception:  # any failure to reach it: no Redis rows
        return None
    return f"redis://127.0.0.1:6379/0?prefix={prefix}-{uuid.uuid4().hex[:8]}"


def load_info() -> dict[str, Any]:
    la = os.getloadavg()
    return {"loadavg_1m": round(la[0], 2), "loadavg_5m": round(la[1], 2), "loadavg_15m": round(la[2], 2),
            "cpus": os.cpu_count(), "python": platform.python_version(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def fmt_us(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v >= 10_000:
        return f"{v / 1000:,.1f} ms"
    if v >= 1000:
        return f"{v / 1000:,.2f} ms"
    return f"{v:,.0f} µs"


def fmt_num(v: float | None, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def fmt_ratio(v: float | None) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "-"
    return f"{v:,.2f}×" if v < 100 else f"{v:,.0f}×"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)) or math.isnan(b):
        return None
    r = a / b
    return None if math.isnan(r) or math.isinf(r) else r


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> None:
    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        t.add_row(*[str(x) for x in r])
    console.print(t)


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "[yellow]n/a[/]"
    return "[green]MET[/]" if ok else "[red]MISSED[/]"


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else round(obj, 3)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def emit_json(name: str, results: dict[str, Any]) -> None:
    """The machine-readable last line of a script's run: one JSON object (``tail -n1 | jq``)."""
    sys.stdout.write(json.dumps({"benchmark": name, **_clean(results)}, separators=(",", ":")) + "\n")
    sys.stdout.flush()
