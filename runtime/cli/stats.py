"""``repertory stats``: the hosts' metrics as a table, from a running server or a Ray cluster."""

from __future__ import annotations

import os
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from repertory.cli.common import console, exit_on_error

__all__ = ["stats"]

# Columns: (title, metric name in /metrics without the repertory_ prefix, HostStats field).
COLUMNS = (("turns", "turns_total", "turns"), ("errors", "turn_errors_total", "turn_errors"),
           ("resident", "resident_sessions", "resident"), ("activations", "activations_total", "activations"),
           ("passivations", "passivations_total", "passivations"), ("CAS retries", "cas_retries_total", "cas_retries"),
           ("cancelled", "turns_cancelled_total", "turns_cancelled"),
           ("redirects", "redirects_total", "redirects"),
           ("prompt resends", "prompt_resends_total", "prompt_resends"))


def _rows_from_text(text: str) -> dict[str, dict[str, float]]:
    """Per host, the metrics of a Prometheus text scrape (either runtime's /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    rows: dict[str, dict[str, float]] = {}
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (host, what) -> [(le, count)]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            host = sample.labels.get("host")
            if host is None or not sample.name.startswith("repertory_"):
                continue
            row = rows.setdefault(host, {})
            name = sample.name.removeprefix("repertory_")
            if name in ("turn_latency_seconds_bucket", "store_latency_seconds_bucket"):
                buckets.setdefault((host, name.split("_")[0]), []).append(
                    (float(sample.labels["le"]), sample.value))
            elif name in ("turn_latency_seconds_quantile", "store_latency_seconds_quantile"):
                row[f"{name.split('_')[0]} p{sample.labels['quantile'][2:]}"] = sample.value
            elif name == "turn_errors_total":
                row[name] = row.get(name, 0) + sample.value  # summed over error types
            else:
                row[name] = sample.value
    for (host, what), cumulative in buckets.items():  # a histogram (local runtime): bucket bounds
        cumulative.sort()
        total = cumulative[-1][1] if cumulative else 0
        for q in ("50", "95", "99"):
            bound = next((le for le, n in cumulative if total and n >= total * int(q) / 100), None)
            if bound is not None and bound != float("inf"):
                rows[host][f"{what} p{q}"] = bound
    return rows


def _rows_from_stats(stats: list[Any]) -> dict[str, dict[str, float]]:
    rows = {}
    for st in stats:
        row = {metric: getattr(st, field) for _, metric, field in COLUMNS}
        for q in ("50", "95", "99"):
            for what in ("turn", "store"):
                value = getattr(st, f"{what}_p{q}")
                if value is not None:
                    row[f"{what} p{q}"] = value
        rows[st.host] = row
    return rows


def _table(rows: dict[str, dict[str, float]]) -> Table:
    table = Table(title="repertory hosts", caption="latencies: the hosts' quantiles on Ray, histogram "
                  "bucket bounds without Ray")
    table.add_column("host", no_wrap=True)
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="right")
    latencies = ("turn p50", "turn p95", "turn p99", "store p50", "store p99")
    for title in latencies:
        table.add_column(f"{title} ms", justify="right")
    for host, row in sorted(rows.items()):
        cells = [f"{row.get(metric, 0):.0f}" for _, metric, _ in COLUMNS]
        cells += [f"{row[t] * 1000:.2f}" if t in row else "-" for t in latencies]
        table.add_row(host, *cells)
    return table


def stats(
    url: Annotated[Optional[str], typer.Option("--url", help="A running `repertory serve`, e.g. "
                                                "http://127.0.0.1:8000 (admin key from REPERTORY_ADMIN_KEY).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="A Ray cluster to join instead "
                                                    "(e.g. auto); its hosts answer directly.")] = None,
    store: Annotated[Optional[str], typer.Option("--store", help="The store the cluster's runtime uses.")] = None,
    namespace: Annotated[str, typer.Option("--namespace", help="The runtime's Ray namespace.")] = "repertory",
) -> None:
    """Print the session hosts' metrics (turns, errors, resident sessions, latencies) as a table."""
    import repertory

    with exit_on_error():
        if (url is None) == (address is None):
            raise repertory.InvalidInput("give --url (a running server) or --address (a Ray cluster), one of them")
        if url is not None:
            import httpx

            key = os.environ.get("REPERTORY_ADMIN_KEY", "")
            try:
                resp = httpx.get(url.rstrip("/") + "/metrics", headers={"Authorization": f"Bearer {key}"},
                                 timeout=30)
            except httpx.TransportError as exc:
                raise repertory.ServerUnavailable(f"cannot reach {url}: {exc}; is `repertory serve` running?") from None
            if resp.status_code in (401, 403):
                raise repertory.AccessDenied(f"{url}/metrics needs the admin key: set REPERTORY_ADMIN_KEY")
            if resp.status_code != 200:
                raise repertory.ServerError(f"{url}/metrics answered {resp.status_code}: {resp.text[:300]}")
            rows = _rows_from_text(resp.text)
        else:
            rt = repertory.init(address=address, store=store, namespace=namespace)
            try:
                from repertory._sync import run_sync

                rows = _rows_from_stats(run_sync(rt.astats))
            finally:
                repertory.shutdown()
    console.print(_table(rows))
