"""The inbox: a dropped file is validated by the sensor and ingested exactly once by its run."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pytest

from portfolio_pipeline import warehouse
from portfolio_pipeline.market.assets import RAW_OHLCV_DDL
from portfolio_pipeline.market.sources.sample import SampleNewsSource
from portfolio_pipeline.news.assets import RAW_NEWS_DDL
from portfolio_pipeline.operations.jobs import inbox_ingest_job
from portfolio_pipeline.operations.sensors import build_inbox_sensor
from portfolio_pipeline_tests.conftest import DATA_DIR
from portfolio_pipeline_tests.helpers import pipeline_resources

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
STORED = (date(2024, 1, 1), date(2024, 1, 10))
IN_FILE = (date(2024, 1, 3), date(2024, 1, 5))


@pytest.fixture()
def setup(tmp_path, tmp_warehouse, monkeypatch, sample_ohlcv):
    """A warehouse holding 10 days of BTC/ETH and 40 articles; an empty inbox."""
    resources = pipeline_resources(tmp_warehouse, symbols=tuple(SYMBOLS))
    stored = sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS) & pl.col("date").is_between(*STORED)
    )
    news = (
        SampleNewsSource(DATA_DIR / "crypto_news.parquet")
        .fetch(date(2021, 10, 1), date(2021, 12, 31))
        .head(40)
    )
    now = pl.lit(datetime(2024, 2, 1, tzinfo=UTC))
    with warehouse.connection(tmp_warehouse) as con:
        warehouse.replace_rows(
            con,
            "market.raw_ohlcv",
            stored.with_columns(now.alias("ingested_at")),
            where="false",
            ddl_columns=RAW_OHLCV_DDL,
        )
        warehouse.replace_rows(
            con,
            "news.raw_news",
            news.with_columns(now.alias("ingested_at")),
            where="false",
            ddl_columns=RAW_NEWS_DDL,
        )
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    sensor = build_inbox_sensor(inbox_ingest_job, inbox_dir, settle_seconds=0)
    return {
        "resources": resources,
        "warehouse": tmp_warehouse,
        "inbox": inbox_dir,
        "sensor": sensor,
        "stored": stored,
        "news": news,
        "instance": dg.DagsterInstance.ephemeral(),
    }


def _tick(setup):
    context = dg.build_sensor_context(
        instance=setup["instance"], resources={"ohlcv_source": setup["resources"]["ohlcv_source"]}
    )
    return setup["sensor"].evaluate_tick(context)


def _run(setup, request):
    return inbox_ingest_job.execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        resources=setup["resources"],
        instance=setup["instance"],
    )


def _ohlcv(path):
    with warehouse.connection(path, read_only=True) as con:
        return con.execute(
            "select symbol, date, open, high, low, close, volume, source from market.raw_ohlcv order by symbol, date"
        ).pl()


def _revised_candles(stored: pl.DataFrame) -> pl.DataFrame:
    """Days 3..5 of the stored candles with every price 1% higher (a vendor correction)."""
    return stored.filter(pl.col("date").is_between(*IN_FILE)).select(
        "symbol", "date", *(pl.col(c) * 1.01 for c in ("open", "high", "low", "close")), "volume"
    )


def test_valid_file_is_ingested_once_replacing_exactly_its_rows(setup):
    revised = _revised_candles(setup["stored"])
    path = setup["inbox"] / "corrections.csv"
    revised.write_csv(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    tick = _tick(setup)
    assert [r.run_key for r in tick.run_requests] == [digest]
    processed = setup["inbox"] / "processed" / digest[:16] / "corrections.csv"
    assert processed.exists() and not path.exists()
    request = tick.run_requests[0]
    assert request.run_config["ops"]["ingest_inbox_file"]["config"]["path"] == str(processed)

    result = _run(setup, request)
    assert result.success
    after = _ohlcv(setup["warehouse"])
    assert after.height == setup["stored"].height  # replaced, not appended
    in_file = pl.col("date").is_between(*IN_FILE)
    changed = after.filter(in_file).sort("symbol", "date")
    assert changed.select("open", "high", "low", "close").equals(
        revised.sort("symbol", "date").select("open", "high", "low", "close")
    )
    assert set(changed["source"]) == {"files:corrections.csv"}
    before_untouched = setup["stored"].filter(~in_file).select("symbol", "date", "close")
    assert after.filter(~in_file).select("symbol", "date", "close").equals(before_untouched)
    partitions = sorted(
        m.partition for m in result.asset_materializations_for_node("ingest_inbox_file")
    )
    assert partitions == ["2024-01"]  # the monthly partition holding the file's days

    # The same bytes again (even under another name): no second run, nothing written.
    revised.write_csv(setup["inbox"] / "corrections_again.csv")
    again = _tick(setup)
    assert not again.run_requests
    assert "duplicate" in again.skip_message
    assert not (setup["inbox"] / "corrections_again.csv").exists()
    assert _ohlcv(setup["warehouse"]).equals(after)
    assert not _tick(setup).run_requests  # and an empty inbox requests nothing


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        ("high_below_low", ["ohlcv_high_ge_open_close", "ETHUSDT 2024-01-04"]),
        ("non_numeric", ["numeric_and_date_values", "'close'", "ETHUSDT 2024-01-04"]),
        ("unknown_symbol", ["symbols_in_universe", "DOGEUSDT"]),
        ("unrecognisable", ["recognisable_columns"]),
        ("header_only", ["not_empty"]),
    ],
)
def test_corrupt_file_is_rejected_with_reason_and_changes_nothing(setup, corrupt, expected):
    revised = _revised_candles(setup["stored"])
    hit = (pl.col("symbol") == "ETHUSDT") & (pl.col("date") == date(2024, 1, 4))
    if corrupt == "high_below_low":
        bad = revised.with_columns(
            pl.when(hit).then(pl.col("low") * 0.5).otherwise("high").alias("high")
        )
    elif corrupt == "non_numeric":
        bad = revised.with_columns(pl.col("close").cast(pl.Utf8)).with_columns(
            pl.when(hit).then(pl.lit("n/a")).otherwise("close").alias("close")
        )
    elif corrupt == "unknown_symbol":
        bad = revised.with_columns(
            pl.when(hit).then(pl.lit("DOGEUSDT")).otherwise("symbol").alias("symbol")
        )
    elif corrupt == "unrecognisable":
        bad = pl.DataFrame({"when": ["2024-01-01"], "what": ["something"]})
    else:
        bad = revised.head(0)
    bad.write_csv(setup["inbox"] / "bad.csv")
    before = _ohlcv(setup["warehouse"])

    tick = _tick(setup)
    assert not tick.run_requests
    rejected = setup["inbox"] / "rejected" / "bad.csv"
    reason = (setup["inbox"] / "rejected" / "bad.csv.reason.txt").read_text()
    assert rejected.exists() and not (setup["inbox"] / "bad.csv").exists()
    for part in expected:
        assert part in reason, reason
    assert not (setup["inbox"] / "processed").exists()
    assert _ohlcv(setup["warehouse"]).equals(before)


def test_news_file_replaces_articles_by_id(setup):
    news = setup["news"]
    edited = news.head(5).with_columns((pl.col("title") + " (updated)").alias("title"))
    fresh = pl.DataFrame(
        {
            "published_at": ["2022-01-15T10:00:00Z"],
            "title": ["Bitcoin ETF decision delayed again"],
            "url": ["https://example.org/etf-delay"],
            "symbols": ["BTCUSDT"],
        }
    )
    edited.select("published_at", "title", "url", "source").with_columns(
        pl.col("published_at").dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    ).write_csv(setup["inbox"] / "a_edits.csv")
    fresh.write_parquet(setup["inbox"] / "b_new.parquet")

    tick = _tick(setup)
    assert len(tick.run_requests) == 2
    for request in tick.run_requests:
        assert _run(setup, request).success
    with warehouse.connection(setup["warehouse"], read_only=True) as con:
        stored = con.execute("select id, title, symbols from news.raw_news").pl()
    assert stored.height == news.height + 1  # 5 replaced in place, 1 added
    titles = dict(stored.select("id", "title").iter_rows())
    assert all(titles[i].endswith("(updated)") for i in edited["id"])
    assert sum(t.endswith("(updated)") for t in titles.values()) == 5
    assert stored.filter(pl.col("title") == "Bitcoin ETF decision delayed again")[
        "symbols"
    ].to_list() == [["BTCUSDT"]]


def test_run_refuses_a_file_changed_after_acceptance(setup):
    path = setup["inbox"] / "prices.csv"
    _revised_candles(setup["stored"]).write_csv(path)
    request = _tick(setup).run_requests[0]
    processed = request.run_config["ops"]["ingest_inbox_file"]["config"]["path"]
    with open(processed, "a") as handle:
        handle.write("BTCUSDT,2024-01-09,1,1,1,1,1\n")
    before = _ohlcv(setup["warehouse"])
    result = inbox_ingest_job.execute_in_process(
        run_config=request.run_config,
        resources=setup["resources"],
        instance=setup["instance"],
        raise_on_error=False,
    )
    assert not result.success
    assert _ohlcv(setup["warehouse"]).equals(before)
