from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from portfolio_pipeline.portfolio.holdings import latest_prices, load_holdings, value_holdings
from portfolio_pipeline.settings import SAMPLE_SYMBOLS

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holdings.csv"
    path.write_text(text)
    return path


def test_shipped_holdings_load_and_only_hold_trading_symbols(sample_ohlcv: pl.DataFrame) -> None:
    holdings = load_holdings(REPO / "data" / "holdings.csv", SAMPLE_SYMBOLS)
    assert holdings.columns == ["symbol", "quantity"]
    assert "USDT" in holdings.get_column("symbol").to_list()
    prices = latest_prices(sample_ohlcv, date(2025, 12, 31))
    trading = set(prices.filter("trading").get_column("symbol"))
    assert set(holdings.get_column("symbol")) - {"USDT"} <= trading
    valued = value_holdings(holdings, prices)
    assert valued.get_column("weight").sum() == pytest.approx(1.0)
    assert 90_000 < valued.get_column("value").sum() < 110_000


def test_valid_file_with_comments_and_cash(tmp_path: Path) -> None:
    path = _write(tmp_path, "# mine\nsymbol,quantity\nbtcusdt,0.5\n\nUSDT,100\n")
    frame = load_holdings(path, ["BTCUSDT"])
    assert frame.to_dicts() == [
        {"symbol": "BTCUSDT", "quantity": 0.5},
        {"symbol": "USDT", "quantity": 100.0},
    ]


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (
            "symbol,quantity\nBTCUSDT,1\nFOOUSDT,2\n",
            r"holdings.csv:3: symbol FOOUSDT: unknown symbol",
        ),
        ("symbol,quantity\nBTCUSDT,-1\n", r"holdings.csv:2: symbol BTCUSDT: negative quantity"),
        (
            "symbol,quantity\nBTCUSDT,1\nUSDT,5\nBTCUSDT,2\n",
            r":4: symbol BTCUSDT: duplicate symbol \(first seen on line 2\)",
        ),
        ("symbol,quantity\nBTCUSDT,abc\n", r":2: symbol BTCUSDT: quantity 'abc' is not a number"),
        ("symbol,quantity\nBTCUSDT,nan\n", r":2: symbol BTCUSDT: quantity 'nan' is not finite"),
        ("asset,amount\nBTCUSDT,1\n", r"holdings.csv:1: header must contain"),
        ("# nothing\n", r"empty holdings file"),
    ],
)
def test_bad_rows_name_file_line_and_symbol(tmp_path: Path, body: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        load_holdings(_write(tmp_path, body), ["BTCUSDT", "ETHUSDT"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_holdings(tmp_path / "nope.csv", ["BTCUSDT"])


def test_latest_prices_flag_delisted(sample_ohlcv: pl.DataFrame) -> None:
    prices = latest_prices(sample_ohlcv, date(2024, 12, 31)).filter(
        pl.col("symbol").is_in(["MATICUSDT", "BTCUSDT"])
    )
    rows = {r["symbol"]: r for r in prices.iter_rows(named=True)}
    assert rows["MATICUSDT"]["price_date"] == date(2024, 9, 10)
    assert rows["MATICUSDT"]["trading"] is False
    assert rows["BTCUSDT"]["trading"] is True


def test_value_holdings_requires_prices() -> None:
    holdings = pl.DataFrame({"symbol": ["BTCUSDT", "USDT"], "quantity": [1.0, 10.0]})
    with pytest.raises(ValueError, match="no price for BTCUSDT"):
        value_holdings(holdings, pl.DataFrame({"symbol": ["ETHUSDT"], "price": [1.0]}))


def test_cash_is_a_setting(tmp_path: Path) -> None:
    path = _write(tmp_path, "symbol,quantity\nUSD,1000\nAAPL,10\n")
    holdings = load_holdings(path, ["AAPL", "MSFT"], cash_symbol="USD")
    prices = pl.DataFrame({"symbol": ["AAPL"], "price": [150.0]})
    valued = value_holdings(holdings, prices, cash_symbol="USD")
    assert dict(valued.select("symbol", "value").iter_rows()) == {"USD": 1000.0, "AAPL": 1500.0}
    # USDT is not cash on an equities book: named with the setting to change
    with pytest.raises(
        ValueError,
        match=r"holdings.csv:2: symbol USDT: unknown symbol .*USD.*"
        r"PORTFOLIO_PIPELINE_CASH",
    ):
        load_holdings(_write(tmp_path, "symbol,quantity\nUSDT,5\n"), ["AAPL"], cash_symbol="USD")


def test_cash_setting_is_read_from_the_environment(monkeypatch) -> None:
    from portfolio_pipeline.settings import load_settings

    monkeypatch.setenv("PORTFOLIO_PIPELINE_CASH", "eur")
    assert load_settings().cash_symbol == "EUR"
