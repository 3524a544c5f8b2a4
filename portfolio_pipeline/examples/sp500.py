"""An equities universe for the ``files`` source: 20 S&P 500 stocks on business days.

The CLOSES are real: ``skfolio.datasets.load_sp500_dataset()`` (daily adjusted closes of 20
large US stocks, 1990-01-02 .. 2022-12-28, the NYSE calendar with its holidays; shipped with
skfolio, no network). OPEN, HIGH, LOW and VOLUME are MADE UP around them (skfolio has no
such columns), deterministically from ``seed``:

- ``open[t] = close[t-1] * exp(g)`` with ``g ~ N(0, 0.25 * |log return[t]| + 0.002)`` (an
  overnight gap); the first open is the first close;
- ``high = max(open, close) * (1 + |N(0, 0.006)|)``, ``low = min(open, close) * (1 - |N(0,
  0.006)|)``, so ``low <= open, close <= high`` always holds;
- ``volume = base * exp(N(0, 0.35)) * (1 + 20 * |log return|)`` shares, ``base`` a fixed
  per-symbol level; ``quote_volume = volume * close`` (USD).

Use it to try the pipeline on an equity calendar (252 sessions a year, weekends and holidays
closed, cash in USD)::

    python -m portfolio_pipeline.examples.sp500 data/files --start 2019-01-02

writes ``data/files/ohlcv/sp500.parquet`` and ``data/files/holdings_usd.csv``; see the README
section "Equities" for the settings that go with it. Features, forecasts and backtests on it
are real computations, but volume-based features (``volume_z_20``, liquidity) reflect the
made-up volume.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

SOURCE = "skfolio-sp500 (real closes; open/high/low/volume synthetic)"


def sp500_closes() -> pl.DataFrame:
    """The real closes, long format ``symbol, date, close`` (20 symbols)."""
    from skfolio.datasets import load_sp500_dataset

    prices = load_sp500_dataset()
    wide = pl.from_pandas(prices.reset_index()).rename({"Date": "date"})
    return (
        wide.with_columns(pl.col("date").cast(pl.Date))
        .unpivot(index="date", variable_name="symbol", value_name="close")
        .select("symbol", "date", pl.col("close").cast(pl.Float64))
        .sort("symbol", "date")
    )


def sp500_ohlcv(start: date | None = None, end: date | None = None, seed: int = 0) -> pl.DataFrame:
    """Business-day OHLCV panel of the 20 stocks over ``[start, end]`` (see the module
    docstring for what is real and what is made up). Deterministic for a given ``seed``; the
    synthetic columns of a day do not depend on ``start``."""
    closes = sp500_closes()
    frames = []
    for index, (symbol, frame) in enumerate(
        sorted(closes.partition_by("symbol", as_dict=True).items())
    ):
        close = frame["close"].to_numpy()
        rng = np.random.default_rng([seed, index])
        n = close.size
        log_ret = np.concatenate(([0.0], np.diff(np.log(close))))
        gap = rng.normal(0.0, 0.25 * np.abs(log_ret) + 0.002)
        open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(gap)
        open_[0] = close[0]
        high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.006, n)))
        low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.006, n)))
        base = 2e6 * (1.0 + index % 7)
        volume = np.round(base * np.exp(rng.normal(0.0, 0.35, n)) * (1.0 + 20 * np.abs(log_ret)))
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol[0],
                    "date": frame["date"],
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "quote_volume": volume * close,
                }
            )
        )
    panel = pl.concat(frames).with_columns(pl.lit(SOURCE).alias("source"))
    if start is not None:
        panel = panel.filter(pl.col("date") >= start)
    if end is not None:
        panel = panel.filter(pl.col("date") <= end)
    return panel.sort("symbol", "date")


def example_holdings(ohlcv: pl.DataFrame, cash: str = "USD", value: float = 100_000.0) -> str:
    """A holdings CSV worth about ``value``: half in cash, half in the five largest stocks by
    traded value on the last day, at its closes."""
    last = ohlcv.filter(pl.col("date") == ohlcv["date"].max())
    top = last.sort("quote_volume", descending=True).head(5)
    lines = ["symbol,quantity", f"{cash},{value / 2:.2f}"]
    for symbol, close in top.select("symbol", "close").iter_rows():
        lines.append(f"{symbol},{round(value / 10 / close, 2)}")
    return "\n".join(lines) + "\n"


def write_files_source(
    folder: Path, start: date | None = None, end: date | None = None, cash: str = "USD"
) -> tuple[Path, Path]:
    """Write ``<folder>/ohlcv/sp500.parquet`` and ``<folder>/holdings_usd.csv``."""
    ohlcv = sp500_ohlcv(start, end)
    (folder / "ohlcv").mkdir(parents=True, exist_ok=True)
    prices = folder / "ohlcv" / "sp500.parquet"
    ohlcv.drop("source").write_parquet(prices)
    holdings = folder / "holdings_usd.csv"
    holdings.write_text(example_holdings(ohlcv, cash))
    return prices, holdings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the files source folder (e.g. data/files)")
    parser.add_argument("--start", type=date.fromisoformat, default=None)
    parser.add_argument("--end", type=date.fromisoformat, default=None)
    parser.add_argument("--cash", default="USD")
    args = parser.parse_args(argv)
    prices, holdings = write_files_source(args.folder, args.start, args.end, args.cash)
    print(f"wrote {prices} and {holdings}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
