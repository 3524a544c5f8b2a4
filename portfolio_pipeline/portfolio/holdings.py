"""The user's current portfolio: a CSV of ``symbol,quantity`` rows, valued at latest prices.

File format (``data/holdings.csv``)::

    symbol,quantity
    BTCUSDT,0.35
    USDT,12500

``USDT`` is cash (price 1). Blank lines and lines starting with ``#`` are ignored. Every
problem raises ``ValueError`` naming the file, the line and the symbol.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import polars as pl

from portfolio_pipeline.settings import CASH_SYMBOL

HOLDINGS_SCHEMA = {"symbol": pl.Utf8, "quantity": pl.Float64}


def load_holdings(
    path: str | Path, known_symbols: Iterable[str], cash_symbol: str = CASH_SYMBOL
) -> pl.DataFrame:
    """Read and validate a holdings CSV -> frame ``symbol, quantity`` (-> ``portfolio.holdings``).

    Parameters
    ----------
    path : CSV with header ``symbol,quantity`` (extra columns are ignored).
    known_symbols : tradable symbols of the universe; ``cash_symbol`` is always accepted.
    cash_symbol : the cash / quote currency (``USDT`` for crypto, ``USD``, ``EUR`` …).

    Raises
    ------
    ValueError
        Missing file or header, unknown symbol, non-numeric / non-finite / negative quantity,
        duplicate symbol; the message names the file, line number and symbol.
    """
    path = Path(path)
    known = {s.strip().upper() for s in known_symbols} | {cash_symbol}
    if not path.exists():
        raise ValueError(f"{path}: holdings file not found")
    lines = _content_lines(path)
    symbol_col, quantity_col, n_fields = _header_columns(path, *lines[0])
    symbols: list[str] = []
    quantities: list[float] = []
    first_line: dict[str, int] = {}
    for number, text in lines[1:]:
        cells = next(csv.reader([text]))
        if len(cells) <= max(symbol_col, quantity_col):
            raise ValueError(f"{path}:{number}: expected {n_fields} fields, got {cells}")
        symbol = cells[symbol_col].strip().upper()
        where = f"{path}:{number}: symbol {symbol or '<empty>'}"
        if symbol not in known:
            raise ValueError(
                f"{where}: unknown symbol (not in the universe nor {cash_symbol}, the cash "
                "setting PORTFOLIO_PIPELINE_CASH)"
            )
        quantity = _quantity(where, cells[quantity_col].strip())
        if symbol in first_line:
            raise ValueError(f"{where}: duplicate symbol (first seen on line {first_line[symbol]})")
        first_line[symbol] = number
        symbols.append(symbol)
        quantities.append(quantity)
    return pl.DataFrame({"symbol": symbols, "quantity": quantities}, schema=HOLDINGS_SCHEMA)


def _content_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of the lines that are neither blank nor comments; the header
    first (raises when there is none)."""
    with path.open(newline="", encoding="utf-8") as handle:
        lines = [
            (number, text)
            for number, text in enumerate(handle.read().splitlines(), start=1)
            if text.strip() and not text.lstrip().startswith("#")
        ]
    if not lines:
        raise ValueError(f"{path}: empty holdings file (expected header 'symbol,quantity')")
    return lines


def _header_columns(path: Path, header_number: int, header_text: str) -> tuple[int, int, int]:
    """Positions of ``symbol`` and ``quantity`` in the header, and its number of fields."""
    header = [h.strip().lower() for h in next(csv.reader([header_text]))]
    if "symbol" not in header or "quantity" not in header:
        raise ValueError(
            f"{path}:{header_number}: header must contain 'symbol' and 'quantity', got {header}"
        )
    return header.index("symbol"), header.index("quantity"), len(header)


def _quantity(where: str, raw_quantity: str) -> float:
    """A finite, non-negative quantity (the error names the file, line and symbol)."""
    try:
        quantity = float(raw_quantity)
    except ValueError:
        raise ValueError(f"{where}: quantity {raw_quantity!r} is not a number") from None
    if not math.isfinite(quantity):
        raise ValueError(f"{where}: quantity {raw_quantity!r} is not finite")
    if quantity < 0:
        raise ValueError(f"{where}: negative quantity {quantity} (long-only portfolio)")
    return quantity


def latest_prices(ohlcv: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Last close on or before ``as_of`` per symbol -> ``symbol, price, price_date, trading``.

    ``trading`` is False when the symbol has no row on ``as_of`` itself (delisted or halted):
    such a position is valued at its last price but cannot be traded.
    """
    known = ohlcv.filter(pl.col("date") <= as_of)
    if known.is_empty():
        raise ValueError(f"no prices on or before {as_of}")
    return (
        known.sort("date")
        .group_by("symbol")
        .agg(pl.col("close").last().alias("price"), pl.col("date").last().alias("price_date"))
        .with_columns((pl.col("price_date") == as_of).alias("trading"))
        .sort("symbol")
    )


def value_holdings(
    holdings: pl.DataFrame, prices: pl.DataFrame, cash_symbol: str = CASH_SYMBOL
) -> pl.DataFrame:
    """Value holdings -> ``symbol, quantity, price, value, weight`` (cash at price 1).

    ``prices`` has ``symbol, price`` (e.g. from :func:`latest_prices`). A held symbol without a
    price raises, naming it. Weights are fractions of total value and sum to 1.
    """
    priced = holdings.join(prices.select("symbol", "price"), on="symbol", how="left").with_columns(
        pl.when(pl.col("symbol") == cash_symbol)
        .then(pl.lit(1.0))
        .otherwise(pl.col("price"))
        .alias("price")
    )
    unpriced = priced.filter(pl.col("price").is_null()).get_column("symbol").to_list()
    if unpriced:
        raise ValueError(f"holdings have no price for {', '.join(unpriced)}")
    valued = priced.with_columns((pl.col("quantity") * pl.col("price")).alias("value"))
    total = float(valued.get_column("value").sum())
    if total <= 0:
        raise ValueError("holdings are worth nothing at the latest prices: cannot form weights")
    return valued.with_columns((pl.col("value") / total).alias("weight"))
