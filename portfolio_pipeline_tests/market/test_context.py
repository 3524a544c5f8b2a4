from datetime import date

import polars as pl
import pytest

from portfolio_pipeline.market.context import (
    RULE_CRYPTO,
    RULE_SETTING,
    RULE_TRADED_VALUE,
    MarketContextError,
    choose_benchmark,
    market_context,
)
from portfolio_pipeline.settings import load_settings


def test_btc_is_the_crypto_benchmark_and_the_setting_wins(sample_ohlcv):
    assert choose_benchmark(sample_ohlcv).symbol == "BTCUSDT"
    assert choose_benchmark(sample_ohlcv).rule == RULE_CRYPTO
    assert choose_benchmark(sample_ohlcv, "ETHUSDT") == type(choose_benchmark(sample_ohlcv))(
        "ETHUSDT", RULE_SETTING
    )
    with pytest.raises(MarketContextError, match="PORTFOLIO_PIPELINE_BENCHMARK=SPY is not in"):
        choose_benchmark(sample_ohlcv, "SPY")


def test_without_btc_the_largest_traded_value_still_trading_wins(sample_ohlcv):
    no_btc = sample_ohlcv.filter(pl.col("symbol") != "BTCUSDT")
    last_year = no_btc.filter(pl.col("date") > date(2024, 12, 31))
    traded = (
        last_year.filter(
            pl.col("symbol").is_in(
                last_year.filter(pl.col("date") == date(2025, 12, 31))["symbol"].implode()
            )
        )
        .group_by("symbol")
        .agg(pl.col("quote_volume").sum())
        .sort("quote_volume", descending=True)
    )
    chosen = choose_benchmark(no_btc)
    assert chosen == type(chosen)(traded["symbol"][0], RULE_TRADED_VALUE)
    assert chosen.symbol == "ETHUSDT"
    # a symbol that stopped trading is never the benchmark, however large it was
    stopped = no_btc.filter(
        ~((pl.col("symbol") == "ETHUSDT") & (pl.col("date") > date(2025, 6, 30)))
    )
    assert choose_benchmark(stopped).symbol != "ETHUSDT"


def test_market_context_from_settings(sample_ohlcv, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_PERIODS_PER_YEAR", "360")
    monkeypatch.setenv("PORTFOLIO_PIPELINE_CASH", "USDC")
    context = market_context(sample_ohlcv, load_settings())
    meta = context.as_metadata()
    assert meta["periods_per_year"] == 360 and meta["periods_per_year_source"] == "setting"
    assert meta["calendar"] == "7-day" and meta["cash_symbol"] == "USDC"
    assert meta["benchmark"] == "BTCUSDT"
