from datetime import UTC, date, datetime

import polars as pl
import pytest

from portfolio_pipeline.market.quality import validate_news, validate_ohlcv
from portfolio_pipeline.market.sources.sample import SampleNewsSource, SampleOhlcvSource
from portfolio_pipeline_tests.conftest import DATA_DIR


@pytest.fixture(scope="module")
def btc_eth():
    return SampleOhlcvSource(DATA_DIR / "crypto_ohlcv_daily.parquet").fetch(
        ["BTCUSDT", "ETHUSDT"], date(2023, 1, 1), date(2023, 3, 31)
    )


def _set(frame, symbol, day, **values):
    hit = (pl.col("symbol") == symbol) & (pl.col("date") == day)
    return frame.with_columns(
        [pl.when(hit).then(pl.lit(v)).otherwise(pl.col(c)).alias(c) for c, v in values.items()]
    )


def test_real_sample_passes(btc_eth):
    report = validate_ohlcv(btc_eth)
    assert report.ok and all(r.passed for r in report.results)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"high": 1.0}, "ohlcv_high_ge_open_close"),
        ({"low": 10**7}, "ohlcv_low_le_open_close"),
        ({"close": -5.0}, "ohlcv_prices_positive"),
        ({"volume": -1.0}, "ohlcv_volume_non_negative"),
    ],
)
def test_broken_rule_names_symbol_and_date(btc_eth, change, rule):
    report = validate_ohlcv(_set(btc_eth, "ETHUSDT", date(2023, 2, 14), **change))
    assert not report.ok
    failed = {r.rule.name: r for r in report.blocking_failures}
    assert rule in failed
    assert "ETHUSDT 2023-02-14" in failed[rule].message
    assert rule in report.failure_message()


def test_duplicates_future_dates_and_gaps(btc_eth):
    dup = pl.concat([btc_eth, btc_eth.head(1)])
    assert "ohlcv_unique_symbol_date" in {
        r.rule.name for r in validate_ohlcv(dup).blocking_failures
    }
    future = validate_ohlcv(btc_eth, today=date(2023, 3, 30))
    names = {r.rule.name: r for r in future.blocking_failures}
    assert "2023-03-31" in names["ohlcv_no_future_dates"].message
    gap = validate_ohlcv(btc_eth.filter(pl.col("date") != date(2023, 2, 1)))
    assert gap.ok  # a gap only warns
    warn = {r.rule.name: r for r in gap.results}["ohlcv_no_gaps"]
    assert not warn.passed and "BTCUSDT 2023-02-02" in warn.message


def test_news_rules(sample_news):
    news = SampleNewsSource(DATA_DIR / "crypto_news.parquet").fetch(
        date(2022, 1, 1), date(2022, 1, 31)
    )
    assert validate_news(news).ok
    broken = news.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("  ")).otherwise("title").alias("title")
    )
    report = validate_news(broken)
    assert [r.rule.name for r in report.blocking_failures] == ["news_title_not_empty"]
    late = validate_news(news, now=datetime(2022, 1, 15, tzinfo=UTC))
    assert "news_no_future_dates" in {r.rule.name for r in late.blocking_failures}
