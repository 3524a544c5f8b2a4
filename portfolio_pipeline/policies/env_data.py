"""Environment data: the pipeline's polars frames pivoted once into dense numpy arrays.

Pure (no dagster). :func:`build_env_data` checks the frames (required columns, unique keys,
positive closes, known symbols) and pivots them on the (date, symbol) grid into an
:class:`EnvData`: prices, causally z-scored features (:func:`causal_zscore`), forecasts and
sentiment. The environments (:mod:`portfolio_pipeline.policies.env`,
:mod:`portfolio_pipeline.policies.vec_env`) then step over those arrays with no dataframe work.

Timing convention (no look-ahead): row ``t`` of every array holds only data known by the close
of date ``t``.

Input frames
------------
ohlcv
    Raw OHLCV (``market.raw_ohlcv``): symbol, date, close (+ volume). Ragged panel.
features
    ``features.market_features`` (symbol, date, feature columns), or None.
forecasts
    ``ml.return_forecasts`` / ``ml.forecast_backtest``: as_of, symbol, horizon_days, q10, q50,
    q90. A forecast issued at ``as_of`` is observed at that date.
sentiment
    ``features.daily_sentiment``: symbol, date (first usable day) and numeric columns
    (``sentiment``/``sentiment_ewm``, ``news_count``...). Days without news are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import numpy as np
import polars as pl

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

DateLike = date | str | np.datetime64 | int | None


class EnvDataError(ValueError):
    """An input frame breaks a rule of :func:`build_env_data`; the message names it."""


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
    base_weights : numpy.ndarray or None
        Shape (T, N+1), float64, cash last: what a residual policy's base strategy holds at
        each date, decided from rows <= that date (:mod:`portfolio_pipeline.policies.residual`).
    base_strategy : str or None
        The base strategy's name.
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
    base_weights: np.ndarray | None = None
    base_strategy: str | None = None

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
        if self.base_weights is not None and self.base_weights.shape != (n_dates, n_assets + 1):
            raise EnvDataError(
                f"base_weights shape {self.base_weights.shape} != ({n_dates}, {n_assets + 1})"
            )

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
        # cast: numpy's stubs have no datetime64(datetime64, unit) overload.
        day = np.datetime64(cast(Any, value), "D")
        return int(np.searchsorted(self.dates, day, side="left"))

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
    """Pivot the pipeline's polars frames once into dense arrays for the environments.

    The frames and their columns are those of the module docstring ("Input frames");
    ``features=None`` computes the small causal set of :func:`simple_price_features`;
    ``forecasts`` and ``sentiment`` are optional. ``symbols``: the universe in column order
    (default: every symbol of ``ohlcv``, sorted). ``feature_columns``: default the SPEC market
    features (every built-in column when ``features`` is None). ``forecast_horizon``: the
    ``horizon_days`` observed (default: the shortest present). ``sentiment_columns``: default
    every numeric column but symbol/date. ``normalisation_window``: rows of the causal
    rolling z-score (:func:`causal_zscore`).

    Returns an :class:`EnvData`: dates (T,), prices (T, N), features (T, N, F), forecasts
    (T, N, 3) or None, sentiment (T, N, k) or None. Raises :class:`EnvDataError` on missing
    columns, duplicate keys, non-positive prices or unknown symbols; the message names the
    rule, the symbols and the dates.
    """
    ohlcv, universe = _universe_ohlcv(ohlcv, symbols)
    dates, grid = _date_symbol_grid(ohlcv, universe)
    prices = _pivot(grid, ohlcv, "date", ["close"])[:, :, 0]
    feature_array, columns = _feature_array(
        ohlcv, features, feature_columns, universe, grid, normalisation_window
    )
    forecast_array = None
    if forecasts is not None:
        forecast_array = _forecast_array(
            forecasts, forecast_horizon, universe, grid, normalisation_window
        )
    sentiment_array: np.ndarray | None = None
    sentiment_names: tuple[str, ...] = ()
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


def _date_symbol_grid(
    ohlcv: pl.DataFrame, universe: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The panel's sorted dates (the union over symbols) and the (date, symbol) grid every
    frame is pivoted on: date-major, symbols in universe order."""
    dates = ohlcv.select(pl.col("date").cast(pl.Date)).unique().sort("date")
    grid = dates.join(pl.DataFrame({"symbol": universe}), how="cross").sort(
        "date", pl.col("symbol").cast(pl.Enum(universe))
    )
    return dates, grid


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
