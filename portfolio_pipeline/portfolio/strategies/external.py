"""Weights computed outside the strategies (the DRL policy), replayed as a strategy."""

from __future__ import annotations

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.strategies.base import Decision, Strategy, _cash_only
from portfolio_pipeline.portfolio.strategies.estimation import Estimate, EstimationCache
from portfolio_pipeline.portfolio.strategies.panel import MarketPanel


class ExternalWeights(Strategy):
    """Replays target weights computed elsewhere (the DRL policy): ``fit(weights)`` takes the
    frame ``as_of, symbol, weight``.

    At ``d`` the latest ``as_of <= d`` is used (at most ``max_age_days`` old when given).
    ``USDT`` is cash; weights of assets not trading at ``d`` are moved to cash (and named in the
    reason). Before the first supplied date the portfolio stays in cash.
    """

    name = "external"

    def __init__(
        self,
        name: str = "external",
        max_age_days: int | None = None,
        tolerance: float = 1e-6,
        rebalance_frequency: str | None = None,
    ) -> None:
        super().__init__(lookback_days=2, min_history=2)
        self.name = name
        self.max_age_days = max_age_days
        self.tolerance = tolerance
        self.rebalance_frequency = rebalance_frequency

    def _fit_data(self, weights: pl.DataFrame | None) -> None:
        """Check every ``as_of`` sums to 1 with no negative weight; keep them sorted."""
        need = {"as_of", "symbol", "weight"}
        if weights is None:
            raise ValueError(f"external weights '{self.name}': fit(weights) needs a frame {need}")
        if not need <= set(weights.columns):
            raise ValueError(f"external weights lack columns {sorted(need - set(weights.columns))}")
        sums = weights.group_by("as_of").agg(
            pl.col("weight").sum().alias("total"), pl.col("weight").min().alias("lowest")
        )
        bad = sums.filter(((pl.col("total") - 1.0).abs() > self.tolerance) | (pl.col("lowest") < 0))
        if bad.height:
            row = bad.sort("as_of").row(0, named=True)
            raise ValueError(
                f"external weights '{self.name}' on {row['as_of']} must be >= 0 and sum to 1 "
                f"(sum {row['total']:.6f}, min {row['lowest']:.6f})"
            )
        self.weights_ = weights.select("as_of", "symbol", "weight").sort("as_of")
        self.dates_ = np.array(
            self.weights_.get_column("as_of").unique().sort().to_list(), dtype="datetime64[D]"
        )

    def _decide_at(self, panel: MarketPanel, row: int, estimates: EstimationCache) -> Decision:
        """The latest supplied weights (no moments needed)."""
        return self._decide(panel, row, None)

    def _decide(self, panel: MarketPanel, row: int, est: Estimate | None) -> Decision:
        day = panel.date_at(row)
        pos = int(np.searchsorted(self.dates_, np.datetime64(day, "D"), side="right")) - 1
        if pos < 0:
            return _cash_only(panel.n_assets, f"no external weights on or before {day}: cash")
        as_of = self.dates_[pos].astype(object)
        if self.max_age_days is not None and (day - as_of).days > self.max_age_days:
            return _cash_only(
                panel.n_assets,
                f"latest external weights ({as_of}) older than {self.max_age_days} days: cash",
            )
        rows = self.weights_.filter(pl.col("as_of") == as_of)
        full = np.zeros(panel.n_assets + 1)
        index = {s: i for i, s in enumerate(panel.symbols)}
        moved: list[str] = []
        for symbol, weight in rows.select("symbol", "weight").iter_rows():
            if symbol == panel.cash_symbol:
                full[-1] += weight
            elif symbol in index and np.isfinite(panel.close[row, index[symbol]]):
                full[index[symbol]] += weight
            else:
                full[-1] += weight
                if weight > 0:
                    moved.append(symbol)
        reason = f"external weights as of {as_of}"
        if moved:
            reason += f"; not trading on {day}, moved to cash: {', '.join(sorted(moved))}"
        return Decision(full / full.sum(), reason)
