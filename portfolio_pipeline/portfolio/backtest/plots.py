"""Figures of backtests, for asset metadata."""

from __future__ import annotations

import numpy as np
import polars as pl


def plot_equity_curves(equity: pl.DataFrame, title: str = "Backtest") -> bytes:
    """PNG of equity curves (top) and drawdowns (bottom) per strategy, for asset metadata."""
    from portfolio_pipeline.common.plots import figure_png, pyplot

    plt = pyplot()

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=[2, 1])
    for name in sorted(equity.get_column("strategy").unique().to_list()):
        part = equity.filter(pl.col("strategy") == name).sort("date")
        dates = part.get_column("date").to_list()
        values = part.get_column("equity").to_numpy()
        peaks = np.maximum.accumulate(np.concatenate(([1.0], values)))[1:]
        top.plot(dates, values, label=name, linewidth=1.2)
        bottom.plot(dates, values / peaks - 1.0, linewidth=1.0)
    top.set_ylabel("equity (start = 1)")
    top.set_title(title)
    top.legend(fontsize=8, ncol=3)
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    return figure_png(fig)
