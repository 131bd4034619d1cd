"""The monitoring summary of a serving endpoint, as numbers, a PNG of plots, or a self-contained HTML page.

From the AI Gateway's usage table (``system.serving.endpoint_usage``): request volume, error rate, guardrail and
rate-limit hits, latency p50/p99, tokens, and cost by the workspace's price table; from the endpoint's
monitoring table (what its scheduled scorers wrote): the quality of each scorer over time. Everything is put
into time buckets chosen for the window (minutes, hours or days, about 48 of them).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BUCKETS = ((60_000, "minute"), (300_000, "5 minutes"), (900_000, "15 minutes"), (3_600_000, "hour"),
           (21_600_000, "6 hours"), (86_400_000, "day"))


def _bucket(span_ms: int) -> tuple[int, str]:
    for size, label in BUCKETS:
        if span_ms / size <= 60:
            return size, label
    return BUCKETS[-1]


def _p(values: np.ndarray, q: float) -> float | None:
    return None if values.size == 0 else float(np.percentile(values, q))


def summarise(endpoint: str, usage: pa.Table, quality: pa.Table | None, *, start_ms: int, end_ms: int,
              price: Callable[[int, int], float] | None) -> dict[str, Any]:
    """The report's numbers: totals, and per time bucket the series each plot draws."""
    size, label = _bucket(max(1, end_ms - start_ms))
    first = start_ms - start_ms % size
    edges = list(range(first, end_ms + size, size))
    n = len(edges) - 1 if len(edges) > 1 else 1

    def index(times: np.ndarray) -> np.ndarray:
        return np.clip((times - first) // size, 0, n - 1).astype(np.int64)

    times = usage.column("request_time").cast(pa.int64()).to_numpy(zero_copy_only=False) if usage.num_rows else \
        np.zeros(0, np.int64)
    status = usage.column("status_code").to_numpy(zero_copy_only=False) if usage.num_rows else np.zeros(0)
    latency = usage.column("latency_ms").to_numpy(zero_copy_only=False).astype(float) if usage.num_rows else np.zeros(0)
    tok_in = usage.column("input_token_count").to_numpy(zero_copy_only=False) if usage.num_rows else np.zeros(0)
    tok_out = usage.column("output_token_count").to_numpy(zero_copy_only=False) if usage.num_rows else np.zeros(0)
    blocked = np.array([dict(c or []).get("brickyard.blocked_by") == "guardrail"
                        for c in usage.column("usage_context").to_pylist()], dtype=bool) if usage.num_rows else \
        np.zeros(0, dtype=bool)
    at = index(times)
    series: dict[str, list[Any]] = {k: [] for k in ("requests", "errors", "guardrail_hits", "rate_limited",
                                                    "latency_p50_ms", "latency_p99_ms", "input_tokens",
                                                    "output_tokens", "cost")}
    for b in range(n):
        mask = at == b
        ok = mask & (status < 400)
        series["requests"].append(int(mask.sum()))
        series["guardrail_hits"].append(int((mask & blocked).sum()))
        series["rate_limited"].append(int((mask & (status == 429)).sum()))
        series["errors"].append(int((mask & (status >= 400) & (status != 429) & ~blocked).sum()))
        series["latency_p50_ms"].append(_p(latency[ok], 50))
        series["latency_p99_ms"].append(_p(latency[ok], 99))
        series["input_tokens"].append(int(tok_in[mask].sum()))
        series["output_tokens"].append(int(tok_out[mask].sum()))
        series["cost"].append(None if price is None else round(price(int(tok_in[mask].sum()),
                                                                      int(tok_out[mask].sum())), 8))
    scorers: dict[str, list[float | None]] = {}
    scored = 0
    if quality is not None and quality.num_rows:
        q_times = quality.column("time").cast(pa.int64()).to_numpy(zero_copy_only=False)
        q_at = index(q_times)
        values = quality.column("value").to_numpy(zero_copy_only=False).astype(float)
        names = quality.column("scorer").to_pylist()
        for name in sorted(set(names)):
            mine = np.array([x == name for x in names])
            line = []
            for b in range(n):
                v = values[mine & (q_at == b)]
                v = v[~np.isnan(v)]
                line.append(round(float(v.mean()), 4) if v.size else None)
            scorers[name] = line
        scored = int(quality.num_rows)
    total = int(status.size)
    ok_all = status < 400
    return {
        "endpoint": endpoint, "start": _iso(start_ms), "end": _iso(end_ms), "bucket": label,
        "buckets": [_iso(e) for e in edges[:n]],
        "totals": {"requests": total, "error_rate": round(float(series_sum(series["errors"]) / total), 4) if total
                   else None, "guardrail_hits": series_sum(series["guardrail_hits"]),
                   "rate_limited": series_sum(series["rate_limited"]),
                   "latency_p50_ms": _p(latency[ok_all], 50), "latency_p99_ms": _p(latency[ok_all], 99),
                   "input_tokens": int(tok_in.sum()), "output_tokens": int(tok_out.sum()),
                   "cost": None if price is None else round(price(int(tok_in.sum()), int(tok_out.sum())), 6),
                   "verdicts": scored,
                   "quality": {name: _mean(line) for name, line in scorers.items()}},
        "series": series, "quality": scorers,
    }


def series_sum(values: list[Any]) -> int:
    return int(sum(v or 0 for v in values))


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(sum(got) / len(got), 4) if got else None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="minutes")


def read_window(table: pa.Table | Any, time_column: str, start_ms: int, end_ms: int,
                where: tuple[str, str] | None = None) -> pa.Table:
    """Rows of a dataset (or table) in [start, end], optionally where column == value."""
    ts = pa.scalar(start_ms, pa.timestamp("ms", tz="UTC")), pa.scalar(end_ms, pa.timestamp("ms", tz="UTC"))
    expr = (pc.field(time_column) >= ts[0]) & (pc.field(time_column) <= ts[1])
    if where is not None:
        expr = expr & (pc.field(where[0]) == where[1])
    if isinstance(table, pa.Table):
        return table.filter(expr)
    return table.to_table(filter=expr)


def render_png(report: dict[str, Any]) -> bytes:
    """The plots, as one PNG: quality per scorer, requests and failures, latency, tokens and cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [datetime.fromisoformat(b) for b in report["buckets"]]
    s = report["series"]
    fig, axes = plt.subplots(4, 1, figsize=(10, 13), sharex=True)
    fig.suptitle(f"{report['endpoint']}: {report['start']} to {report['end']} (per {report['bucket']})")
    ax = axes[0]
    for name, line in report["quality"].items():
        ax.plot(x, [math.nan if v is None else v for v in line], marker="o", label=name)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Quality per scorer (share judged good)")
    if report["quality"]:
        ax.legend(loc="lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no scheduled scorer has judged this endpoint's traces", ha="center",
                transform=ax.transAxes)
    ax = axes[1]
    ax.bar(x, s["requests"], width=0.8 * _width(x), color="#9ab", label="requests")
    ax.plot(x, s["errors"], color="#c33", marker=".", label="errors")
    ax.plot(x, s["guardrail_hits"], color="#e90", marker=".", label="guardrail hits")
    ax.plot(x, s["rate_limited"], color="#639", marker=".", label="rate limited (429)")
    ax.set_title("Requests")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    ax.plot(x, [math.nan if v is None else v for v in s["latency_p50_ms"]], marker=".", label="p50")
    ax.plot(x, [math.nan if v is None else v for v in s["latency_p99_ms"]], marker=".", label="p99")
    ax.set_title("Latency (ms, successful requests)")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[3]
    ax.bar(x, s["input_tokens"], width=0.8 * _width(x), label="input tokens", color="#7a9")
    ax.bar(x, s["output_tokens"], width=0.8 * _width(x), bottom=s["input_tokens"], label="output tokens",
           color="#bd8")
    ax.set_title("Tokens" + ("" if s["cost"] and s["cost"][0] is not None else " (no price set for the endpoint)"))
    ax.legend(loc="upper left", fontsize=8)
    if s["cost"] and s["cost"][0] is not None:
        twin = ax.twinx()
        twin.plot(x, s["cost"], color="#333", marker=".", label="cost ($)")
        twin.set_ylabel("$")
    fig.autofmt_xdate()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
    return out.getvalue()


def _width(x: list[datetime]) -> float:
    if len(x) < 2:
        return 0.02
    return (x[1] - x[0]).total_seconds() / 86400


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page (no script, the plots inline): every value escaped."""
    png = base64.b64encode(render_png(report)).decode()
    t = report["totals"]
    e = html.escape
    rows = [("requests", t["requests"]), ("error rate", t["error_rate"]), ("guardrail hits", t["guardrail_hits"]),
            ("rate limited", t["rate_limited"]), ("latency p50 (ms)", t["latency_p50_ms"]),
            ("latency p99 (ms)", t["latency_p99_ms"]), ("input tokens", t["input_tokens"]),
            ("output tokens", t["output_tokens"]), ("cost ($)", t["cost"]), ("scorer verdicts", t["verdicts"])]
    rows += [(f"quality: {name}", value) for name, value in t["quality"].items()]
    table = "".join(f"<tr><th>{e(str(k))}</th><td>{e('-' if v is None else str(v))}</td></tr>" for k, v in rows)
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Monitoring: "
            f"{e(report['endpoint'])}</title><style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}"
            f"th{{text-align:left;padding-right:2rem}}</style></head><body>"
            f"<h1>Monitoring: {e(report['endpoint'])}</h1><p>{e(report['start'])} to {e(report['end'])}, per "
            f"{e(report['bucket'])}</p><table>{table}</table>"
            f"<img alt=\"monitoring plots\" src=\"data:image/png;base64,{png}\" style=\"width:100%\"></body></html>")
