"""Prometheus metrics (pure, no dagster): the warehouse's state, the runs, the API itself.

Read at scrape time from the newest snapshot, so every scrape sees what ``GET /health`` and
the dashboard see. A family whose source cannot be read is absent, and
``portfolio_pipeline_warehouse_up`` / ``portfolio_pipeline_run_status_known`` say why in
their ``reason`` label. Names follow Prometheus conventions: ratios are fractions
(``_ratio``), durations and ages in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import duckdb
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from portfolio_pipeline.operations.notifications import RiskLimits, risk_limit_breaches
from portfolio_pipeline.serving import health, queries
from portfolio_pipeline.serving.config import ServeConfig
from portfolio_pipeline.serving.performance import equity_curves
from portfolio_pipeline.serving.risk_report import latest_risk_frame
from portfolio_pipeline.serving.snapshot import SnapshotReader, WarehouseUnavailable

PREFIX = "portfolio_pipeline"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


class RequestMetrics:
    """API request counts and latencies, by method, route template and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            f"{PREFIX}_api_requests", "API requests served", ("method", "route", "status"),
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            f"{PREFIX}_api_request_duration_seconds", "API request latency", ("method", "route"),
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class PipelineCollector(Collector):
    """Freshness, recommendations, risk, drawdown, limit breaches and run statuses."""

    def __init__(
        self,
        reader: SnapshotReader,
        config: ServeConfig,
        runs: health.RunStatusSource,
        limits: RiskLimits,
    ) -> None:
        self.reader, self.config, self.runs, self.limits = reader, config, runs, limits

    def describe(self) -> list[Metric]:
        return []  # dynamic families: never collect at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._runs()
        up = gauge("warehouse_up", "1 when the published warehouse can be read", ("reason",))
        try:
            with self.reader.snapshot() as snap, self.reader.cursor(snap) as cur:
                families = list(self._warehouse(cur, snap.identity.modified_at))
        except WarehouseUnavailable as exc:
            up.add_metric([str(exc)], 0)
            yield up
            return
        up.add_metric([""], 1)
        yield up
        yield from families

    def _warehouse(self, cur: duckdb.DuckDBPyConnection, published: datetime) -> Iterator[Metric]:
        now = datetime.now(UTC)
        snap = gauge("snapshot_published_timestamp_seconds", "when the read snapshot was published")
        snap.add_metric([], published.timestamp())
        yield snap
        yield from self._freshness(cur, now)
        yield from self._recommendations(cur, now)
        yield from self._risk(cur)
        yield from self._drawdown(cur)

    def _freshness(self, cur: duckdb.DuckDBPyConnection, now: datetime) -> Iterator[Metric]:
        age = gauge("data_age_seconds", "age of the newest stored data per source",
                    ("dataset", "source", "live"))  # fmt: skip
        stale = gauge("data_stale", "1 when a live source is older than the freshness limit",
                      ("dataset", "source"))  # fmt: skip
        for v in health.source_freshness(cur, self.config, now):
            if v.age is not None:
                age.add_metric([v.dataset, v.source, str(v.live).lower()], v.age.total_seconds())
            stale.add_metric([v.dataset, v.source], float(v.stale))
        limit = gauge("data_age_limit_seconds", "freshness limit of live sources")
        limit.add_metric([], self.config.max_data_age.total_seconds())
        yield from (age, stale, limit)

    def _recommendations(self, cur: duckdb.DuckDBPyConnection, now: datetime) -> Iterator[Metric]:
        try:
            rec = queries.recommendation_set(cur)
        except (queries.SchemaMismatch, queries.NotFound):
            return
        labels = ("strategy", "as_of")
        trades = gauge("recommended_trades", "BUY/SELL rows of the latest run", labels)
        turnover = gauge("recommended_turnover_ratio", "traded notional / portfolio value", labels)
        age = gauge("recommendation_age_seconds", "since the latest run was generated")
        trades.add_metric([rec.strategy, str(rec.as_of)], rec.trades)
        turnover.add_metric([rec.strategy, str(rec.as_of)], rec.turnover)
        age.add_metric([], (now - rec.generated_at).total_seconds())
        yield from (trades, turnover, age)

    def _risk(self, cur: duckdb.DuckDBPyConnection) -> Iterator[Metric]:
        try:
            latest = latest_risk_frame(cur)
        except queries.SchemaMismatch:
            return
        if latest.is_empty():
            return
        var = gauge("var_ratio", "1-day value at risk (loss fraction)", ("portfolio", "metric"))
        cvar = gauge("cvar_ratio", "1-day conditional VaR (loss fraction)", ("portfolio", "metric"))
        mdd = gauge("max_drawdown_ratio", "max drawdown over the risk look-back", ("portfolio",))
        for row in latest.iter_rows(named=True):
            value = queries.clean(row["value"])
            if value is None:
                continue
            if row["metric"].startswith("var_"):
                var.add_metric([row["portfolio"], row["metric"]], value)
            elif row["metric"].startswith("cvar_"):
                cvar.add_metric([row["portfolio"], row["metric"]], value)
            elif row["metric"] == "max_drawdown":
                mdd.add_metric([row["portfolio"]], value)
        yield from (var, cvar, mdd)
        yield from self._breaches(latest)

    def _breaches(self, latest) -> Iterator[Metric]:
        breaches = risk_limit_breaches(latest, self.limits)
        count = gauge("risk_limit_breaches", "risk metrics over their limit (latest day)")
        count.add_metric([], len(breaches))
        each = gauge("risk_limit_breach", "1 per breached limit", ("portfolio", "metric"))
        for b in breaches:
            each.add_metric([b.portfolio, b.metric], b.value)
        limit = gauge("risk_limit_ratio", "configured risk limits", ("metric",))
        for metric, value in self.limits.limits.items():
            limit.add_metric([metric], value)
        yield from (count, each, limit)

    def _drawdown(self, cur: duckdb.DuckDBPyConnection) -> Iterator[Metric]:
        try:
            curves = equity_curves(cur)
        except queries.SchemaMismatch:
            return
        dd = gauge("drawdown_ratio", "drawdown of the replayed process at the window's end",
                   ("process", "window"))  # fmt: skip
        for curve in curves:
            if curve.equity:
                dd.add_metric(
                    [curve.process, curve.window], 1 - curve.equity[-1] / max(curve.equity)
                )
        yield dd

    def _runs(self) -> Iterator[Metric]:
        known = gauge("run_status_known", "1 when run statuses could be read", ("reason",))
        statuses = self.runs.latest_runs()
        reason = self.runs.unknown_reason()
        known.add_metric([reason or ""], 0 if reason else 1)
        yield known
        if not statuses:
            return
        ok = gauge("last_run_success", "1 when the job's last run succeeded", ("job",))
        status = gauge("last_run_status", "the job's last run status", ("job", "status"))
        duration = gauge("last_run_duration_seconds", "wall time of the last run", ("job",))
        ended = gauge("last_run_end_timestamp_seconds", "when the last run ended", ("job",))
        for s in statuses:
            ok.add_metric([s.job], float(s.status == "SUCCESS"))
            status.add_metric([s.job, s.status], 1)
            if s.duration_seconds is not None:
                duration.add_metric([s.job], s.duration_seconds)
            if s.ended_at is not None:
                ended.add_metric([s.job], s.ended_at.timestamp())
        yield from (ok, status, duration, ended)
