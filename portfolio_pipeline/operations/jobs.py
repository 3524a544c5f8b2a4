"""Jobs: what the schedules and sensors launch.

Asset jobs select by Dagster group so that an asset added to a group joins its jobs without
editing this file; a group or key that does not exist simply selects nothing.

* ``daily_refresh_job``: everything except the deep-RL policy retraining (group
  ``policies``): the raw partition(s) of the scheduled day(s) (the month to date), then
  features, sentiment, forecasts, target weights, recommendations, risk. One run: Dagster runs
  the monthly-partitioned raw assets for the run's partition (or partition range) and the
  unpartitioned assets downstream of them in the same run, in dependency order, and a failed
  quality gate stops everything after it.
* ``policy_retraining_job``: the ``policies`` group and everything downstream of it, so that
  weights, backtests, recommendations and risk never disagree with the policy just trained.
* ``full_backfill_job``: every asset (launch it over a partition range; the raw assets run that
  range in a single run thanks to their ``BackfillPolicy.single_run()``).
* ``holdings_refresh_job``: the assets that read ``data/holdings.csv`` and what reports on it:
  ``holdings``, ``recommendations``, ``risk_metrics``, ``stress_tests``.
* ``inbox_ingest_job``: one op that writes one validated inbox file (see the inbox sensor).
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from portfolio_pipeline import groups, tables
from portfolio_pipeline.market.assets import RAW_OHLCV_DDL
from portfolio_pipeline.market.partitions import month_key, yesterday_utc
from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.news.assets import RAW_NEWS_DDL
from portfolio_pipeline.operations import inbox
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource

POLICIES_GROUP = groups.POLICIES
HOLDINGS_REFRESH_ASSETS = ("holdings", "recommendations", "risk_metrics", "stress_tests")

DAILY_REFRESH_JOB = "daily_refresh_job"
POLICY_RETRAINING_JOB = "policy_retraining_job"
FULL_BACKFILL_JOB = "full_backfill_job"
HOLDINGS_REFRESH_JOB = "holdings_refresh_job"
INBOX_INGEST_JOB = "inbox_ingest_job"


def daily_refresh_selection() -> dg.AssetSelection:
    excluded = dg.AssetSelection.groups(POLICIES_GROUP)
    return (dg.AssetSelection.all() - excluded).required_multi_asset_neighbors()


def policy_retraining_selection() -> dg.AssetSelection:
    return dg.AssetSelection.groups(POLICIES_GROUP).downstream().required_multi_asset_neighbors()


def holdings_refresh_selection(existing_keys: Iterable[str]) -> dg.AssetSelection:
    """The holdings assets that exist (``AssetSelection.assets`` refuses unknown keys)."""
    present = [name for name in HOLDINGS_REFRESH_ASSETS if name in set(existing_keys)]
    # A multi-asset (risk_metrics + stress_tests + liquidity) must run whole.
    return dg.AssetSelection.assets(*present).required_multi_asset_neighbors()


def build_asset_jobs(existing_keys: Iterable[str]) -> list:
    existing_keys = set(existing_keys)
    return [
        dg.define_asset_job(
            DAILY_REFRESH_JOB,
            selection=daily_refresh_selection(),
            description="Nightly: the raw month to date (yesterday's partition), then features, "
            "sentiment, forecasts, weights, recommendations and risk (everything but DRL "
            "retraining).",
            tags={"portfolio_pipeline/kind": "refresh"},
        ),
        dg.define_asset_job(
            POLICY_RETRAINING_JOB,
            selection=policy_retraining_selection(),
            description="Weekly: retrain the deep-RL policy, then everything that depends on it.",
            tags={"portfolio_pipeline/kind": "retraining"},
        ),
        dg.define_asset_job(
            FULL_BACKFILL_JOB,
            selection=dg.AssetSelection.all(),
            description="Every asset. Launch over a partition range (raw assets load the whole "
            "range in one run), e.g. from the UI's partitions page or the CLI.",
            tags={"portfolio_pipeline/kind": "backfill"},
        ),
        dg.define_asset_job(
            HOLDINGS_REFRESH_JOB,
            selection=holdings_refresh_selection(existing_keys),
            description="After data/holdings.csv changed: holdings, recommendations and risk.",
            tags={"portfolio_pipeline/kind": "holdings"},
        ),
    ]


# --------------------------------------------------------------------------- inbox ingestion
class InboxFileConfig(dg.Config):
    """The processed copy of an accepted inbox file (set by the inbox sensor)."""

    path: str
    kind: str
    content_hash: str


def _partition_keys(frame: pl.DataFrame, kind: str, first: date) -> list[str]:
    """The monthly partitions of the raw asset holding the file's days (from the month of
    ``first``, the settings' start, to yesterday's)."""
    days = frame["date"] if kind == inbox.OHLCV else frame["published_at"].dt.date()
    first, last = first.replace(day=1), yesterday_utc()
    return sorted({month_key(d) for d in days.unique().to_list() if first <= d <= last})


@dg.op(
    description="Write one validated inbox file into market.raw_ohlcv or news.raw_news, "
    "replacing exactly the (symbol, date) rows or article ids it contains, in one transaction.",
    tags={"kind": "duckdb"},
)
def ingest_inbox_file(
    context: dg.OpExecutionContext,
    config: InboxFileConfig,
    warehouse_resource: WarehouseResource,
    ohlcv_source: OhlcvSourceResource,
    settings: dg.ResourceParam[Settings],
):
    path = Path(config.path)
    if not path.exists():
        raise dg.Failure(f"inbox file {path} is gone: was processed/ cleaned up?")
    verdict = inbox.inspect_inbox_file(path, universe=ohlcv_source.symbols)
    if verdict.content_hash != config.content_hash:
        raise dg.Failure(
            f"{path.name}: content changed since the sensor accepted it "
            f"(hash {verdict.content_hash[:16]} != {config.content_hash[:16]}): drop it again"
        )
    if not verdict.accepted:  # validated by the sensor already; rules may have changed since
        raise dg.Failure(f"inbox file rejected, nothing was written: {verdict.reason}")
    if verdict.kind != config.kind:
        raise dg.Failure(f"{path.name}: is {verdict.kind}, the run expected {config.kind}")
    table, ddl, asset = (
        (tables.RAW_OHLCV, RAW_OHLCV_DDL, "raw_ohlcv")
        if verdict.kind == inbox.OHLCV
        else (tables.RAW_NEWS, RAW_NEWS_DDL, "raw_news")
    )
    frame = verdict.frame.with_columns(pl.lit(datetime.now(UTC)).alias("ingested_at"))
    with warehouse_resource.connect() as con:
        replaced = inbox.replace_inbox_rows(con, verdict.kind, frame, table=table, ddl_columns=ddl)
    context.log.info(f"{verdict.summary()}: wrote {frame.height} row(s), replaced {replaced}")
    # The (monthly) partitions whose stored rows changed, so the UI and downstream staleness
    # see them.
    for key in _partition_keys(frame, verdict.kind, settings.start_date):
        yield dg.AssetMaterialization(
            asset_key=asset,
            partition=key,
            description=f"rows from inbox file {path.name}",
            metadata={"inbox_file": path.name, "content_hash": config.content_hash},
        )
    yield dg.Output(
        None,
        metadata={
            "table": table,
            "rows_written": frame.height,
            "rows_replaced": replaced,
            "file": path.name,
            "first_day": str(_first_day(frame, verdict.kind)),
        },
    )


def _first_day(frame: pl.DataFrame, kind: str) -> date:
    return frame["date"].min() if kind == inbox.OHLCV else frame["published_at"].min().date()


@dg.job(
    name=INBOX_INGEST_JOB,
    description="Ingest one file dropped into data/inbox/ (launched by inbox_sensor).",
    tags={"portfolio_pipeline/kind": "inbox"},
)
def inbox_ingest_job():
    ingest_inbox_file()
