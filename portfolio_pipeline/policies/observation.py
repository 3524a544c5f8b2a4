"""What a portfolio environment observes: the layout of an observation and the arrays it is
cut from.

Pure (no dagster). :func:`observation_arrays` precomputes, once per environment, the padded
per-asset channels (the window at ``t`` is a zero-copy view) and the per-date blocks
(forecasts, sentiment, the rolling covariance); :class:`ObservationLayout` says where each
part lies, so a policy can read an observation per asset
(:mod:`portfolio_pipeline.policies.policy_net`). Nothing dated after ``t`` enters row ``t``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from portfolio_pipeline.policies.env_data import ZSCORE_CLIP, EnvData

# Annualised covariance entries are clipped here (a 30-day window holding DOGE's +392% day
# reaches ~30); the observation Box is bounded by the larger of the two clips.
COVARIANCE_CLIP = 10.0
OBSERVATION_BOUND = max(ZSCORE_CLIP, COVARIANCE_CLIP)


@dataclass(frozen=True)
class ObservationLayout:
    """Where each part of a :class:`PortfolioEnv` observation lies (see its docstring).

    In order: the window ``(lookback, n_assets, n_channels)`` flattened date-major; the
    ``n_assets + 1`` weights (cash last); one ``(n_assets, k)`` block per entry ``k`` of
    ``per_asset_blocks``, flattened asset-major (forecasts, then sentiment); then
    ``covariance_width`` cross-asset numbers. A policy that reads the observation per asset
    (:mod:`portfolio_pipeline.policies.policy_net`) cuts it with this.
    """

    n_assets: int
    lookback: int
    n_channels: int
    per_asset_blocks: tuple[int, ...] = ()
    covariance_width: int = 0

    @property
    def window_width(self) -> int:
        return self.lookback * self.n_assets * self.n_channels

    @property
    def token_width(self) -> int:
        """Numbers about one asset: its window, its weight and its per-date channels."""
        return self.lookback * self.n_channels + 1 + sum(self.per_asset_blocks)

    @property
    def size(self) -> int:
        return (
            self.window_width
            + self.n_assets
            + 1
            + self.n_assets * sum(self.per_asset_blocks)
            + self.covariance_width
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain ints and lists (what a saved policy keeps)."""
        out = asdict(self)
        out["per_asset_blocks"] = list(self.per_asset_blocks)
        return out

    @classmethod
    def from_dict(cls, values: Any) -> ObservationLayout:
        if isinstance(values, ObservationLayout):
            return values
        return cls(**{**values, "per_asset_blocks": tuple(values.get("per_asset_blocks", ()))})


@dataclass(frozen=True, eq=False)  # arrays: identity equality, no element-wise __eq__
class ObservationArrays:
    """The arrays an environment cuts its observations from, precomputed once.

    Attributes
    ----------
    padded_channels : numpy.ndarray
        Shape (lookback - 1 + T, N * C), float32: ``lookback - 1`` zero rows, then per date
        the N assets' C channels (features and the listed flag). Rows ``t .. t+lookback-1``
        are the dates ``t-lookback+1 .. t``, so the window at ``t`` is a contiguous view.
    window_width : int
        ``lookback * N * C``: the length of a flattened window.
    per_date : numpy.ndarray
        Shape (T, k), float32: forecasts, sentiment and covariance observed at each date
        (k may be 0).
    layout : ObservationLayout
    """

    padded_channels: np.ndarray
    window_width: int
    per_date: np.ndarray
    layout: ObservationLayout

    @property
    def size(self) -> int:
        """Length D of one observation: window, the N + 1 weights, the per-date block."""
        return self.window_width + self.layout.n_assets + 1 + self.per_date.shape[1]


def observation_arrays(
    data: EnvData,
    lookback: int,
    *,
    include_forecasts: bool,
    include_sentiment: bool,
    include_covariance: bool,
    periods_per_year: int,
    include_base: bool = False,
) -> ObservationArrays:
    """Precompute the observation parts of every date of ``data`` (see :class:`ObservationArrays`)."""
    n_dates, n_assets = data.prices.shape
    listed = data.listed
    channels = np.concatenate(
        [data.features, listed[:, :, None].astype(np.float32)], axis=2
    ).reshape(n_dates, -1)
    # Rows t .. t+lookback-1 of the padded panel are dates t-lookback+1 .. t, contiguous in
    # memory: the window at t is a zero-copy view, no per-step gather.
    padded_channels = np.concatenate(
        [np.zeros((lookback - 1, channels.shape[1]), np.float32), channels]
    )
    per_date, blocks, covariance_width = _per_date_blocks(
        data,
        lookback,
        include_forecasts,
        include_sentiment,
        include_covariance,
        periods_per_year,
        include_base,
    )
    layout = ObservationLayout(
        n_assets=n_assets,
        lookback=lookback,
        n_channels=channels.shape[1] // n_assets,
        per_asset_blocks=tuple(blocks),
        covariance_width=covariance_width,
    )
    return ObservationArrays(padded_channels, lookback * channels.shape[1], per_date, layout)


def _per_date_blocks(
    data: EnvData,
    lookback: int,
    include_forecasts: bool,
    include_sentiment: bool,
    include_covariance: bool,
    periods_per_year: int,
    include_base: bool = False,
) -> tuple[np.ndarray, list[int], int]:
    """(T, k) float32 per-date observation columns, the width per asset of each per-asset
    block (forecasts, sentiment, the base strategy's weights) and the width of the covariance
    block."""
    n_dates = data.prices.shape[0]
    per_date: list[np.ndarray] = []
    blocks: list[int] = []
    if include_forecasts and data.forecasts is not None:
        per_date.append(data.forecasts.reshape(n_dates, -1))
        blocks.append(data.forecasts.shape[2])
    if include_sentiment and data.sentiment is not None:
        per_date.append(data.sentiment.reshape(n_dates, -1))
        blocks.append(data.sentiment.shape[2])
    if include_base and data.base_weights is not None:  # risky part; cash is 1 - their sum
        per_date.append(data.base_weights[:, :-1])
        blocks.append(1)
    covariance_width = 0
    if include_covariance:
        per_date.append(rolling_covariance(data.prices, lookback, periods_per_year))
        covariance_width = per_date[-1].shape[1]
    stacked = (
        np.concatenate(per_date, axis=1).astype(np.float32)
        if per_date
        else np.zeros((n_dates, 0), np.float32)
    )
    return stacked, blocks, covariance_width


def rolling_covariance(prices: np.ndarray, lookback: int, periods_per_year: int) -> np.ndarray:
    """(T, N(N+1)/2) annualised covariance of log returns over the last ``lookback`` rows
    (upper triangle, row-major), clipped to ``[-COVARIANCE_CLIP, COVARIANCE_CLIP]``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_returns = np.diff(np.log(prices), axis=0, prepend=np.nan)
    log_returns = np.nan_to_num(log_returns, nan=0.0, posinf=0.0, neginf=0.0)
    sums = np.cumsum(log_returns, axis=0)
    products = np.cumsum(log_returns[:, :, None] * log_returns[:, None, :], axis=0)
    window_sums, window_products = sums.copy(), products.copy()
    window_sums[lookback:] -= sums[:-lookback]
    window_products[lookback:] -= products[:-lookback]
    counts = np.minimum(np.arange(1, len(prices) + 1), lookback)[:, None, None]
    means = window_sums / counts[:, :, 0]
    covariance = window_products / counts - means[:, :, None] * means[:, None, :]
    rows, cols = np.triu_indices(prices.shape[1])
    annualised = covariance[:, rows, cols] * periods_per_year
    return np.clip(annualised, -COVARIANCE_CLIP, COVARIANCE_CLIP).astype(np.float32)
