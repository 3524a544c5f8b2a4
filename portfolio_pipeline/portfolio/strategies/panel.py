"""The market panel: the dense close, return and volume matrices every strategy reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from portfolio_pipeline.settings import CASH_SYMBOL


@dataclass(frozen=True)
class MarketPanel:
    """Dense close-price matrix of a ragged universe.

    Attributes
    ----------
    dates : (T,) ``datetime64[D]``, sorted, every date present in the OHLCV frame.
    symbols : tuple of N symbols (column order; cash is NOT a column).
    close : (T, N) closes, NaN where the symbol does not trade (not listed yet / delisted).
    returns : (T, N) simple returns ``close[t] / close[t-1] - 1``, NaN where either is missing.
    quote_volume : (T, N) USDT volume; ``volume * close`` where the source has no quote volume.
    cash_symbol : name of the cash asset in every weight frame built from this panel (the
        ``PORTFOLIO_PIPELINE_CASH`` setting: ``USDT`` for crypto, ``USD``, ``EUR`` …).
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    close: np.ndarray
    returns: np.ndarray
    quote_volume: np.ndarray
    cash_symbol: str = CASH_SYMBOL

    @classmethod
    def from_ohlcv(
        cls,
        ohlcv: pl.DataFrame,
        symbols: tuple[str, ...] | None = None,
        cash_symbol: str = CASH_SYMBOL,
    ) -> MarketPanel:
        """Pivot a raw OHLCV frame (symbol, date, close, volume, quote_volume) to a panel."""
        missing = {"symbol", "date", "close"} - set(ohlcv.columns)
        if missing:
            raise ValueError(f"OHLCV frame lacks columns {sorted(missing)}")
        frame = ohlcv
        if symbols is not None:
            frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
        if frame.is_empty():
            raise ValueError("OHLCV frame is empty (after the symbol filter)")
        dup = frame.group_by("symbol", "date").len().filter(pl.col("len") > 1)
        if dup.height:
            row = dup.row(0, named=True)
            raise ValueError(
                f"OHLCV has duplicate (symbol, date) rows, e.g. {row['symbol']} on {row['date']}"
            )
        syms = tuple(sorted(frame.get_column("symbol").unique().to_list()))
        dates = frame.get_column("date").unique().sort()
        if "quote_volume" in frame.columns and "volume" in frame.columns:
            qv_expr = pl.coalesce(pl.col("quote_volume"), pl.col("volume") * pl.col("close"))
        elif "volume" in frame.columns:
            qv_expr = pl.col("volume") * pl.col("close")
        else:
            qv_expr = pl.lit(None, dtype=pl.Float64)
        long = frame.select("symbol", "date", "close", qv_expr.alias("qv"))
        base = pl.DataFrame({"date": dates})
        close = base.join(
            long.pivot(on="symbol", index="date", values="close"), on="date", how="left"
        ).sort("date")
        qv = base.join(long.pivot(on="symbol", index="date", values="qv"), on="date", how="left")
        qv = qv.sort("date")
        close_m = close.select(list(syms)).to_numpy().astype(np.float64)
        qv_m = qv.select(list(syms)).to_numpy().astype(np.float64)
        close_m[~(close_m > 0)] = np.nan
        rets = np.full_like(close_m, np.nan)
        rets[1:] = close_m[1:] / close_m[:-1] - 1.0
        return cls(
            dates=dates.to_numpy().astype("datetime64[D]"),
            symbols=syms,
            close=close_m,
            returns=rets,
            quote_volume=qv_m,
            cash_symbol=cash_symbol,
        )

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    def row_of(self, day: date) -> int:
        """Row of the last panel date ``<= day`` (raises when ``day`` precedes the panel)."""
        pos = int(np.searchsorted(self.dates, np.datetime64(day, "D"), side="right")) - 1
        if pos < 0:
            raise ValueError(f"{day} is before the first date of the panel ({self.dates[0]})")
        return pos

    def date_at(self, row: int) -> date:
        return self.dates[row].astype(object)
