"""Gymnasium portfolio-allocation environment over a precomputed daily panel.

Pure (no dagster; gymnasium is light and imported at module level). All dataframe work
happens once in :func:`build_env_data`, which pivots polars frames into dense numpy arrays
(:class:`EnvData`). :class:`PortfolioEnv` then steps over those arrays with no per-step
dataframe work and delegates every accounting rule (cash last, drift, costs on turnover,
delisting) to :mod:`portfolio_pipeline.portfolio.accounting`, so the environment, the backtest
engine and the evaluation of trained policies agree to the last digit.

Timing convention (no look-ahead): the observation at decision date ``t`` holds only data
known by the close of ``t``; the weights chosen at ``t`` earn ``close[t+1] / close[t]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import gymnasium as gym
import numpy as np
import polars as pl
from gymnasium import spaces

from portfolio_pipeline.portfolio import accounting
from portfolio_pipeline.settings import CASH_SYMBOL  # PORTFOLIO_PIPELINE_CASH, else USDT

# The SPEC columns of features.market_features used by default.
MARKET_FEATURE_COLUMNS: tuple[str, ...] = (
    "ret_1d",
    "log_ret_1d",
    "ret_5d",
    "ret_20d",
    "vol_20d",
    "vol_60d",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pct_b_20",
    "atr_14",
    "volume_z_20",
    "drawdown_60d",
)
FORECAST_QUANTILES: tuple[str, ...] = ("q10", "q50", "q90")
DEFAULT_NORMALISATION_WINDOW = 365
DEFAULT_NORMALISATION_MIN_PERIODS = 20
ZSCORE_CLIP = 5.0
# Annualised covariance entries are clipped here (a 30-day window holding DOGE's +392% day
# reaches ~30); the observation Box is bounded by the larger of the two clips.
COVARIANCE_CLIP = 10.0
OBSERVATION_BOUND = max(ZSCORE_CLIP, COVARIANCE_CLIP)

DateLike = date | str | np.datetime64 | int | None


class EnvDataError(ValueError):
    """An input frame breaks a rule of :func:`build_env_data`; the message names it."""


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
class EnvData:
    """Dense, date-aligned arrays the environment steps over.

    Attributes
    ----------
    dates : numpy.ndarray
        Shape (T,), ``datetime64[D]``, strictly increasing (union of the panel's dates).
    symbols : tuple[str, ...]
        The N risky assets in column order; cash (``cash_symbol``) is implicit and LAST.
    prices : numpy.ndarray
        Shape (T, N), float64 close prices; NaN where the asset is not listed (yet/any more).
    features : numpy.ndarray
        Shape (T, N, F), float32, causally normalised (rolling z-score, see
        :func:`causal_zscore`), 0 where unknown.
    feature_names : tuple[str, ...]
        The F feature names.
    forecasts : numpy.ndarray or None
        Shape (T, N, 3), float32, forecast q10/q50/q90 issued at each date (normalised like
        the features), 0 where missing.
    sentiment : numpy.ndarray or None
        Shape (T, N, k), float32, daily sentiment columns usable at each date (normalised),
        0 where there was no news.
    sentiment_names : tuple[str, ...]
        The k sentiment column names.
    cash_symbol : str
        Name of the cash asset in output frames (``USDT``).
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    prices: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]
    forecasts: np.ndarray | None = None
    sentiment: np.ndarray | None = None
    sentiment_names: tuple[str, ...] = ()
    cash_symbol: str = CASH_SYMBOL
    # The market series (market.context.choose_benchmark); the DRL buy-and-hold reference.
    benchmark_symbol: str | None = None

    def __post_init__(self) -> None:
        n_dates, n_assets = self.prices.shape
        if self.dates.shape != (n_dates,):
            raise EnvDataError(f"dates shape {self.dates.shape} != ({n_dates},)")
        if len(self.symbols) != n_assets:
            raise EnvDataError(f"{len(self.symbols)} symbols for {n_assets} price columns")
        if self.features.shape[:2] != (n_dates, n_assets):
            raise EnvDataError(
                f"features shape {self.features.shape} != ({n_dates}, {n_assets}, F)"
            )
        for name, array in (("forecasts", self.forecasts), ("sentiment", self.sentiment)):
            if array is not None and array.shape[:2] != (n_dates, n_assets):
                raise EnvDataError(f"{name} shape {array.shape} != ({n_dates}, {n_assets}, k)")

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    @property
    def listed(self) -> np.ndarray:
        """Shape (T, N) bool: the asset has a price at that date."""
        return np.isfinite(self.prices) & (self.prices > 0)

    def index_of(self, value: DateLike, default: int) -> int:
        """Row index of a date (first row on or after it); ints pass through; None -> default."""
        if value is None:
            return default
        if isinstance(value, int | np.integer):
            return int(value) if value >= 0 else len(self.dates) + int(value)
        return int(np.searchsorted(self.dates, np.datetime64(value, "D"), side="left"))

    def window_indices(self, start: DateLike = None, end: DateLike = None) -> tuple[int, int]:
        """Resolve a half-open date window ``[start, end)`` to row indices.

        The portfolio is held over the window: decisions at rows ``start .. end-2`` earn the
        returns of rows ``start+1 .. end-1``, so no price outside the window is used.
        """
        first = self.index_of(start, 0)
        stop = min(self.index_of(end, len(self.dates)), len(self.dates))
        if stop - first < 2:
            raise EnvDataError(
                f"date window [{start}, {end}) holds {max(stop - first, 0)} dates of the panel "
                f"({self.dates[0]}..{self.dates[-1]}); at least 2 are needed for one step"
            )
        return first, stop

    def date_at(self, index: int) -> date:
        return self.dates[index].astype("datetime64[D]").item()


def causal_zscore(
    values: np.ndarray,
    window: int = DEFAULT_NORMALISATION_WINDOW,
    min_periods: int = DEFAULT_NORMALISATION_MIN_PERIODS,
    clip: float = ZSCORE_CLIP,
) -> np.ndarray:
    """Rolling per-asset, per-channel z-score that only looks back.

    ``z[t] = (x[t] - mean(x[t-window+1..t])) / std(...)`` over the finite values of that
    asset and channel; 0 where fewer than ``min_periods`` values are known, where the std is
    0, or where ``x[t]`` is missing. A rolling (not expanding, not full-sample) window keeps
    price-unit indicators such as MACD or ATR comparable across regimes and never uses the
    future, so the same arrays serve training, validation and test windows.

    Parameters
    ----------
    values : (T, N, C) array.

    Returns
    -------
    (T, N, C) float32 array, clipped to ``[-clip, clip]``.
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    filled = np.where(finite, x, 0.0)
    # Centre each series on its first known value to limit cancellation in E[x^2]-E[x]^2.
    first_known = np.take_along_axis(filled, finite.argmax(axis=0)[None], axis=0)
    centred = np.where(finite, x - first_known, 0.0)

    def rolling_sum(a: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(a, axis=0)
        out = cumulative.copy()
        out[window:] -= cumulative[:-window]
        return out

    count = rolling_sum(finite.astype(np.float64))
    sum1 = rolling_sum(centred)
    sum2 = rolling_sum(centred * centred)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sum1 / count
        variance = np.maximum(sum2 / count - mean * mean, 0.0)
        std = np.sqrt(variance)
        z = (centred - mean) / std
    usable = finite & (count >= min_periods) & (std > 1e-12 * (np.abs(mean) + 1.0))
    z = np.where(usable, z, 0.0)
    return np.clip(z, -clip, clip).astype(np.float32)


def _check_unique(frame: pl.DataFrame, keys: Sequence[str], table: str) -> None:
    duplicated = frame.group_by(list(keys)).len().filter(pl.col("len") > 1)
    if duplicated.height:
        shown = ", ".join(
            " ".join(str(row[k]) for k in keys) for row in duplicated.head(5).iter_rows(named=True)
        )
        raise EnvDataError(f"{table}: duplicate ({', '.join(keys)}) rows: {shown}")


def _require_columns(frame: pl.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EnvDataError(f"{table} lacks required columns {missing}")


def _pivot(
    grid: pl.DataFrame, frame: pl.DataFrame, date_column: str, columns: Sequence[str]
) -> np.ndarray:
    """Left-join ``frame`` on the (date, symbol) grid -> (T, N, len(columns)) float64."""
    joined = grid.join(
        frame.select(
            pl.col("symbol").cast(pl.String),
            pl.col(date_column).cast(pl.Date).alias("date"),
            *[pl.col(c).cast(pl.Float64) for c in columns],
        ),
        on=["date", "symbol"],
        how="left",
        maintain_order="left",
    )
    n_dates = grid["date"].n_unique()
    n_assets = grid.height // n_dates
    matrix = joined.select(columns).fill_null(float("nan")).to_numpy().astype(np.float64)
    return matrix.reshape(n_dates, n_assets, len(columns))


def simple_price_features(ohlcv: pl.DataFrame) -> pl.DataFrame:
    """A small causal feature set from close (and volume, when present) alone.

    Used when no ``features.market_features`` frame is given, so the environment runs on raw
    OHLCV. Per symbol, on rows sorted by date (row t sees rows <= t only): ``log_ret_1d``,
    ``log_ret_5d``, ``log_ret_20d``, ``vol_20d`` (std of daily log returns, not annualised),
    ``drawdown_60d`` (close / 60-row max - 1), ``close_to_sma_20`` (close / SMA20 - 1) and,
    with a volume column, ``volume_z_20``.
    """
    log_ret = pl.col("close").log().diff()
    expressions = [
        log_ret.alias("log_ret_1d"),
        (pl.col("close").log() - pl.col("close").log().shift(5)).alias("log_ret_5d"),
        (pl.col("close").log() - pl.col("close").log().shift(20)).alias("log_ret_20d"),
        log_ret.rolling_std(20).alias("vol_20d"),
        (pl.col("close") / pl.col("close").rolling_max(60, min_samples=1) - 1.0).alias(
            "drawdown_60d"
        ),
        (pl.col("close") / pl.col("close").rolling_mean(20) - 1.0).alias("close_to_sma_20"),
    ]
    if "volume" in ohlcv.columns:
        volume = pl.col("volume").cast(pl.Float64)
        expressions.append(
            ((volume - volume.rolling_mean(20)) / volume.rolling_std(20)).alias("volume_z_20")
        )
    return (
        ohlcv.select(
            pl.col("symbol").cast(pl.String),
            "date",
            "close",
            *(["volume"] if "volume" in ohlcv.columns else []),
        )
        .sort("symbol", "date")
        .with_columns([e.over("symbol") for e in expressions])
        .drop("close", *(["volume"] if "volume" in ohlcv.columns else []))
        .fill_nan(None)
    )


def build_env_data(
    ohlcv: pl.DataFrame,
    features: pl.DataFrame | None,
    forecasts: pl.DataFrame | None = None,
    sentiment: pl.DataFrame | None = None,
    symbols: Sequence[str] | None = None,
    feature_columns: Sequence[str] | None = None,
    *,
    forecast_horizon: int | None = None,
    sentiment_columns: Sequence[str] | None = None,
    normalisation_window: int = DEFAULT_NORMALISATION_WINDOW,
    cash_symbol: str = CASH_SYMBOL,
    benchmark_symbol: str | None = None,
) -> EnvData:
    """Pivot the pipeline's polars frames once into dense arrays for :class:`PortfolioEnv`.

    Parameters
    ----------
    ohlcv : polars.DataFrame
        Raw OHLCV (``market.raw_ohlcv``): symbol, date, close (+ volume). Ragged panel.
    features : polars.DataFrame or None
        ``features.market_features`` (symbol, date, feature columns). None: the small causal
        set of :func:`simple_price_features` is computed from ``ohlcv``.
    forecasts : polars.DataFrame or None
        ``ml.return_forecasts`` / ``ml.forecast_backtest``: as_of, symbol, horizon_days, q10,
        q50, q90. A forecast issued at ``as_of`` is observed at that date.
    sentiment : polars.DataFrame or None
        ``features.daily_sentiment``: symbol, date (first usable day) and numeric columns
        (``sentiment``/``sentiment_ewm``, ``news_count``...). Days without news are 0.
    symbols : sequence of str, optional
        Universe in column order (default: every symbol of ``ohlcv``, sorted).
    feature_columns : sequence of str, optional
        Feature columns to use (default: the SPEC market features, or every column of the
        built-in set when ``features`` is None).
    forecast_horizon : int, optional
        Which ``horizon_days`` to observe (default: the shortest present).
    sentiment_columns : sequence of str, optional
        Default: every numeric column except symbol/date.
    normalisation_window : int
        Rows of the causal rolling z-score (:func:`causal_zscore`).

    Returns
    -------
    EnvData
        dates (T,), prices (T, N), features (T, N, F), forecasts (T, N, 3) or None,
        sentiment (T, N, k) or None.

    Raises
    ------
    EnvDataError
        Missing columns, duplicate keys, non-positive prices or unknown symbols; the message
        names the rule, the symbols and the dates.
    """
    ohlcv, universe = _universe_ohlcv(ohlcv, symbols)
    dates = ohlcv.select(pl.col("date").cast(pl.Date)).unique().sort("date")
    grid = dates.join(pl.DataFrame({"symbol": universe}), how="cross").sort(
        "date", pl.col("symbol").cast(pl.Enum(universe))
    )
    prices = _pivot(grid, ohlcv, "date", ["close"])[:, :, 0]
    feature_array, columns = _feature_array(
        ohlcv, features, feature_columns, universe, grid, normalisation_window
    )
    forecast_array = None
    if forecasts is not None:
        forecast_array = _forecast_array(
            forecasts, forecast_horizon, universe, grid, normalisation_window
        )
    sentiment_array, sentiment_names = None, ()
    if sentiment is not None:
        sentiment_array, sentiment_names = _sentiment_array(
            sentiment, sentiment_columns, universe, grid, normalisation_window
        )
    return EnvData(
        dates=dates["date"].to_numpy().astype("datetime64[D]"),
        symbols=tuple(universe),
        prices=prices,
        features=feature_array,
        feature_names=tuple(columns),
        forecasts=forecast_array,
        sentiment=sentiment_array,
        sentiment_names=sentiment_names,
        cash_symbol=cash_symbol,
        benchmark_symbol=benchmark_symbol,
    )


def _universe_ohlcv(
    ohlcv: pl.DataFrame, symbols: Sequence[str] | None
) -> tuple[pl.DataFrame, list[str]]:
    """The OHLCV rows of the universe (default: every symbol, sorted), checked: known and
    unique symbols, one row per (symbol, date), positive closes."""
    _require_columns(ohlcv, ("symbol", "date", "close"), "OHLCV frame")
    ohlcv = ohlcv.with_columns(pl.col("symbol").cast(pl.String))
    available = sorted(ohlcv["symbol"].unique().to_list())
    universe = list(symbols) if symbols is not None else available
    unknown = sorted(set(universe) - set(available))
    if unknown:
        raise EnvDataError(f"symbols {unknown} have no OHLCV rows")
    if not universe:
        raise EnvDataError("empty universe: no symbols in the OHLCV frame")
    if len(set(universe)) != len(universe):
        raise EnvDataError(f"symbols repeat in the universe: {universe}")
    ohlcv = ohlcv.filter(pl.col("symbol").is_in(universe))
    _check_unique(ohlcv, ("symbol", "date"), "OHLCV frame")
    bad = ohlcv.filter(pl.col("close").is_null() | ~(pl.col("close") > 0))
    if bad.height:
        shown = ", ".join(f"{r['symbol']} {r['date']}" for r in bad.head(5).iter_rows(named=True))
        raise EnvDataError(f"OHLCV close must be a positive number: {shown}")
    return ohlcv, universe


def _feature_array(
    ohlcv: pl.DataFrame,
    features: pl.DataFrame | None,
    feature_columns: Sequence[str] | None,
    universe: list[str],
    grid: pl.DataFrame,
    normalisation_window: int,
) -> tuple[np.ndarray, list[str]]:
    """(T, N, F) z-scored features and their names (the built-in set when ``features`` is
    None, else the SPEC market features or ``feature_columns``)."""
    if features is None:
        features = simple_price_features(ohlcv)
        default_columns = [c for c in features.columns if c not in ("symbol", "date")]
    else:
        default_columns = list(MARKET_FEATURE_COLUMNS)
    columns = list(feature_columns) if feature_columns is not None else default_columns
    _require_columns(features, ("symbol", "date", *columns), "features frame")
    features = features.filter(pl.col("symbol").cast(pl.String).is_in(universe))
    _check_unique(features, ("symbol", "date"), "features frame")
    return causal_zscore(_pivot(grid, features, "date", columns), normalisation_window), columns


def _forecast_array(
    forecasts: pl.DataFrame,
    forecast_horizon: int | None,
    universe: list[str],
    grid: pl.DataFrame,
    normalisation_window: int,
) -> np.ndarray:
    """(T, N, 3) z-scored q10/q50/q90 of one horizon (default: the shortest), observed at
    their ``as_of``."""
    _require_columns(
        forecasts, ("as_of", "symbol", "horizon_days", *FORECAST_QUANTILES), "forecasts frame"
    )
    horizons = sorted(forecasts["horizon_days"].unique().drop_nulls().to_list())
    if not horizons:
        raise EnvDataError("forecasts frame has no horizon_days")
    horizon = forecast_horizon if forecast_horizon is not None else horizons[0]
    if horizon not in horizons:
        raise EnvDataError(f"forecast horizon {horizon} not in forecasts ({horizons})")
    chosen = forecasts.filter(
        (pl.col("horizon_days") == horizon) & pl.col("symbol").cast(pl.String).is_in(universe)
    )
    _check_unique(chosen, ("symbol", "as_of"), f"forecasts frame (horizon {horizon})")
    return causal_zscore(_pivot(grid, chosen, "as_of", FORECAST_QUANTILES), normalisation_window)


def _sentiment_array(
    sentiment: pl.DataFrame,
    sentiment_columns: Sequence[str] | None,
    universe: list[str],
    grid: pl.DataFrame,
    normalisation_window: int,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, N, k) z-scored sentiment columns (default: every numeric one), 0 without news."""
    _require_columns(sentiment, ("symbol", "date"), "sentiment frame")
    names = (
        list(sentiment_columns)
        if sentiment_columns is not None
        else [
            c
            for c, dtype in sentiment.schema.items()
            if c not in ("symbol", "date") and dtype.is_numeric()
        ]
    )
    _require_columns(sentiment, names, "sentiment frame")
    if not names:
        raise EnvDataError("sentiment frame has no numeric columns besides symbol, date")
    chosen = sentiment.filter(pl.col("symbol").cast(pl.String).is_in(universe))
    _check_unique(chosen, ("symbol", "date"), "sentiment frame")
    raw = _pivot(grid, chosen, "date", names)
    # No news is information too: 0 count / neutral score, not "unknown".
    return causal_zscore(np.nan_to_num(raw, nan=0.0), normalisation_window), tuple(names)


def actions_to_weights(action: np.ndarray) -> np.ndarray:
    """Map an action in ``[-1, 1]^(N+1)`` to long-only weights summing to 1 (cash last).

    ``w = relu(a) / sum(relu(a))``; when no entry is positive the portfolio is 100% cash.
    """
    positive = np.maximum(action, 0.0, dtype=np.float64)
    total = positive.sum()
    if total <= 0.0:
        weights = np.zeros_like(positive)
        weights[-1] = 1.0
        return weights
    return positive / total


class PortfolioEnv(gym.Env):
    """Daily long-only allocation over N risky assets plus cash.

    ## Description

    At the close of each date ``t`` the agent chooses target weights for N crypto assets and
    cash (``USDT``, last). The portfolio is rebalanced from its drifted weights to the target,
    paying ``cost_rate`` on the risky turnover, and held until the close of ``t+1``. All
    accounting is :func:`portfolio_pipeline.portfolio.accounting.step`, shared with the backtest.

    ## Action Space

    ``Box(-1, 1, (N+1,), float32)``, mapped by :func:`actions_to_weights`:
    ``w = relu(a) / sum(relu(a))``, and 100% cash when no entry is positive. Why not a
    softmax: a softmax of bounded logits in [-1, 1] cannot go beyond ``e^2 : 1`` between two
    assets, so with 11 entries no weight exceeds ~40% and the policy is stuck near equal
    weight. The relu map reaches every point of the simplex: one positive entry gives a 100%
    position, only the cash entry positive (or none positive) gives 100% cash, and a
    Gaussian policy centred at 0 starts from a diversified random portfolio. Assets without a
    price at ``t`` (not listed yet, delisted) are forced to 0 by
    :func:`accounting.restrict_to_tradable`; their weight goes to cash.

    ## Observation Space

    ``Box(-10, 10, (D,), float32)``, the concatenation of

    - the last ``lookback`` dates (``t-lookback+1 .. t``) of per-asset channels, shape
      ``(lookback, N, F + 1)``: the F causally z-scored features and a listed flag (1 if the
      asset had a price that date); dates before the panel start are zeros;
    - the current (drifted) weights, ``(N + 1,)``;
    - forecasts q10/q50/q90 issued at ``t``, ``(N, 3)``, when the data has them and
      ``include_forecasts``;
    - sentiment usable at ``t``, ``(N, k)``, when present and ``include_sentiment``;
    - optionally the upper triangle of the annualised covariance of daily log returns over the
      last ``lookback`` dates, ``(N (N + 1) / 2,)``, clipped to [-10, 10].

    Unknown values are 0. Nothing dated after ``t`` enters the observation at ``t``.

    ## Rewards

    ``log(V[t+1] / V[t])`` net of costs, minus ``drawdown_penalty * drawdown[t+1]`` (drawdown
    of the episode's value from its running peak, in [0, 1]) and minus
    ``volatility_penalty * log_return ** 2`` (a per-step variance proxy). Both coefficients
    default to 0, so by default the episode return is the log growth of the portfolio.

    ## Starting State

    100% cash, value 1, at the first date of the date window; with ``random_start`` at a date
    drawn uniformly (from ``self.np_random``) so that ``max(min_episode_steps,
    episode_length)`` steps remain when the window is long enough.

    ## Episode End

    ``truncated`` when the episode reaches the end of its date window (or
    ``episode_length`` steps); ``terminated`` only if the portfolio value reaches 0.

    ## Arguments

    - ``env_data``: :class:`EnvData` from :func:`build_env_data`.
    - ``date_window``: ``(start, end)``, half-open, dates or row indices (None = whole panel).
      Decisions at ``start .. end-2`` earn returns of ``start+1 .. end-1``: no price outside
      the window is used.
    - ``cost_rate``: proportional cost on risky turnover (0.001 = 10 bps).
    - ``lookback``: observation window in dates (default 30).
    - ``include_forecasts``, ``include_sentiment``, ``include_covariance``: observation parts.
    - ``drawdown_penalty``, ``volatility_penalty``: reward shaping coefficients (default 0).
    - ``random_start``, ``episode_length``, ``min_episode_steps``: training episodes.
    - ``periods_per_year``: annualisation of the covariance channel (365 crypto, 252 equities).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        env_data: EnvData,
        date_window: tuple[DateLike, DateLike] | None = None,
        *,
        cost_rate: float = 0.001,
        lookback: int = 30,
        include_forecasts: bool = True,
        include_sentiment: bool = True,
        include_covariance: bool = False,
        drawdown_penalty: float = 0.0,
        volatility_penalty: float = 0.0,
        random_start: bool = False,
        episode_length: int | None = None,
        min_episode_steps: int = 1,
        periods_per_year: int = 365,
    ) -> None:
        if lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {lookback}")
        if cost_rate < 0:
            raise ValueError(f"cost_rate must be >= 0, got {cost_rate}")
        if episode_length is not None and episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.env_data = env_data
        self.cost_rate = float(cost_rate)
        self.lookback = int(lookback)
        self.drawdown_penalty = float(drawdown_penalty)
        self.volatility_penalty = float(volatility_penalty)
        self.random_start = bool(random_start)
        self.episode_length = episode_length
        self.min_episode_steps = int(min_episode_steps)
        self.window_start, self.window_end = env_data.window_indices(*(date_window or (None, None)))
        if self.window_end - self.window_start - 1 < self.min_episode_steps:
            raise EnvDataError(
                f"date window {date_window} gives {self.window_end - self.window_start - 1} "
                f"steps, fewer than min_episode_steps={self.min_episode_steps}"
            )

        self._precompute(
            include_forecasts=include_forecasts,
            include_sentiment=include_sentiment,
            include_covariance=include_covariance,
            periods_per_year=periods_per_year,
        )
        n_weights = env_data.n_assets + 1
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n_weights,), dtype=np.float32)
        self.observation_space = spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, shape=(self._observation_size,), dtype=np.float32
        )
        self._t = self.window_start
        self._episode_end = self.window_end
        self._weights = self._all_cash()
        self._value = 1.0
        self._peak = 1.0

    # ------------------------------------------------------------------ precomputation
    def _precompute(
        self,
        *,
        include_forecasts: bool,
        include_sentiment: bool,
        include_covariance: bool,
        periods_per_year: int,
    ) -> None:
        data = self.env_data
        n_dates, n_assets = data.prices.shape
        listed = data.listed
        channels = np.concatenate(
            [data.features, listed[:, :, None].astype(np.float32)], axis=2
        ).reshape(n_dates, -1)
        # Rows t .. t+lookback-1 of the padded panel are dates t-lookback+1 .. t, contiguous in
        # memory: the window at t is a zero-copy view, no per-step gather.
        self._padded_channels = np.concatenate(
            [np.zeros((self.lookback - 1, channels.shape[1]), np.float32), channels]
        )
        self._window_width = self.lookback * channels.shape[1]

        per_date: list[np.ndarray] = []
        blocks: list[int] = []
        if include_forecasts and data.forecasts is not None:
            per_date.append(data.forecasts.reshape(n_dates, -1))
            blocks.append(data.forecasts.shape[2])
        if include_sentiment and data.sentiment is not None:
            per_date.append(data.sentiment.reshape(n_dates, -1))
            blocks.append(data.sentiment.shape[2])
        covariance_width = 0
        if include_covariance:
            per_date.append(self._rolling_covariance(data.prices, periods_per_year))
            covariance_width = per_date[-1].shape[1]
        self._per_date = (
            np.concatenate(per_date, axis=1).astype(np.float32)
            if per_date
            else np.zeros((n_dates, 0), np.float32)
        )
        self._observation_size = self._window_width + n_assets + 1 + self._per_date.shape[1]
        self.observation_layout = ObservationLayout(
            n_assets=n_assets,
            lookback=self.lookback,
            n_channels=channels.shape[1] // n_assets,
            per_asset_blocks=tuple(blocks),
            covariance_width=covariance_width,
        )

        self._tradable = listed  # buyable at t: priced at t (no knowledge of t+1)
        self._all_tradable = listed.all(axis=1)
        self._relatives = np.ones((n_dates, n_assets))
        self._relatives[:-1] = accounting.price_relatives(data.prices[:-1], data.prices[1:])
        self._delisted_next = np.zeros((n_dates, n_assets), dtype=bool)
        self._delisted_next[:-1] = listed[:-1] & ~listed[1:]
        self._date_list: list[date] = data.dates.tolist()  # python dates for info, no per-step cast

    def _rolling_covariance(self, prices: np.ndarray, periods_per_year: int) -> np.ndarray:
        """(T, N(N+1)/2) annualised covariance of log returns over the last ``lookback`` rows."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log_returns = np.diff(np.log(prices), axis=0, prepend=np.nan)
        log_returns = np.nan_to_num(log_returns, nan=0.0, posinf=0.0, neginf=0.0)
        sums = np.cumsum(log_returns, axis=0)
        products = np.cumsum(log_returns[:, :, None] * log_returns[:, None, :], axis=0)
        window_sums, window_products = sums.copy(), products.copy()
        window_sums[self.lookback :] -= sums[: -self.lookback]
        window_products[self.lookback :] -= products[: -self.lookback]
        counts = np.minimum(np.arange(1, len(prices) + 1), self.lookback)[:, None, None]
        means = window_sums / counts[:, :, 0]
        covariance = window_products / counts - means[:, :, None] * means[:, None, :]
        rows, cols = np.triu_indices(prices.shape[1])
        annualised = covariance[:, rows, cols] * periods_per_year
        return np.clip(annualised, -COVARIANCE_CLIP, COVARIANCE_CLIP).astype(np.float32)

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = self._draw_start()
        max_end = self.window_end
        if self.episode_length is not None:
            max_end = min(max_end, self._t + self.episode_length + 1)
        self._episode_end = max_end
        self._weights = self._all_cash()
        self._value = 1.0
        self._peak = 1.0
        return self._observation(), {"date": self._date_list[self._t], "portfolio_value": 1.0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        target = self.target_weights(action)
        t = self._t
        result = accounting.step(
            self._weights,
            target,
            self._relatives[t],
            self.cost_rate,
            self._delisted_next[t],
        )
        reward = self._reward(result)
        self._t = t + 1
        self._weights = result.next_weights
        terminated = not result.growth > 0.0
        truncated = self._t >= self._episode_end - 1
        info = {
            "date": self._date_list[self._t],
            "decision_date": self._date_list[t],
            "portfolio_value": self._value,
            "log_return": result.log_return,
            "net_return": result.growth - 1.0,
            "weights": target,
            "drifted_weights": result.next_weights,
            "turnover": result.turnover,
            "cost": result.cost,
        }
        return self._observation(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    @property
    def current_index(self) -> int:
        """Row of the decision date the next action applies to."""
        return self._t

    @property
    def tradable_now(self) -> np.ndarray:
        """(N,) bool: assets that can be held from the current decision date."""
        return self._tradable[self._t]

    @property
    def portfolio_value(self) -> float:
        return self._value

    @property
    def weights(self) -> np.ndarray:
        """(N+1,) current drifted weights, cash last (a copy)."""
        return self._weights.copy()

    def _all_cash(self) -> np.ndarray:
        weights = np.zeros(self.env_data.n_assets + 1)
        weights[-1] = 1.0
        return weights

    def _draw_start(self) -> int:
        if not self.random_start:
            return self.window_start
        # Leave room for a full episode (episode_length steps) where the window allows it.
        steps_wanted = max(self.min_episode_steps, self.episode_length or 0)
        last_start = max(self.window_start, self.window_end - 1 - steps_wanted)
        return int(self.np_random.integers(self.window_start, last_start + 1))

    def target_weights(self, action: np.ndarray) -> np.ndarray:
        """(N+1,) weights an action means at the current decision date (cash last)."""
        weights = actions_to_weights(action)
        if self._all_tradable[self._t]:  # nothing to restrict: skip the copy (hot path)
            return weights
        return accounting.restrict_to_tradable(weights, self._tradable[self._t])

    def _reward(self, result: accounting.StepResult) -> float:
        self._value *= result.growth
        reward = result.log_return
        if self.volatility_penalty:
            reward -= self.volatility_penalty * result.log_return**2
        if self.drawdown_penalty:
            self._peak = max(self._peak, self._value)
            reward -= self.drawdown_penalty * (1.0 - self._value / self._peak)
        return float(reward)

    def _observation(self) -> np.ndarray:
        t = self._t
        return np.concatenate(
            (
                self._padded_channels[t : t + self.lookback].reshape(-1),
                self._weights.astype(np.float32),
                self._per_date[t],
            )
        )
