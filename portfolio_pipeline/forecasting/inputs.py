"""Design frame of the CatBoost forecasts: model inputs, labels and the training rows.

Pure (no dagster).

One GLOBAL model per horizon is trained across symbols. By default it sees WHICH symbol a
row is as a one-hot column per symbol (``ForecastConfig.symbol_encoding``; up to 255 symbols,
where CatBoost used to switch silently to costlier target statistics above 64);
``symbol_encoding="none"`` serves every symbol with the same function of the inputs, so its
cost does not grow with the universe. Its inputs for a row (symbol, d) are:

- every numeric column of the feature frame on (symbol, d) (any frame: symbol, date,
  numeric columns), minus price-level columns (see :data:`PRICE_LEVEL_COLUMNS`);
- market-wide inputs of date d computed from the raw OHLCV: the market symbol's (the
  benchmark, ``ForecastConfig.market_symbol``: BTCUSDT for crypto)
  1/5/20-day log returns and 20-day volatility, the cross-sectional mean (and dispersion)
  of daily and 5-day log returns, the symbol's excess 5-day return over that mean and its
  trailing daily volatility;
- optionally daily sentiment joined on (symbol, d) (``market_*`` columns on d), nulls -> 0
  with a ``has_news`` flag.

Every input of row d uses only OHLCV/feature rows dated <= d. Labels look forward:

- return target: ``log(close[d+H] / close[d])`` where d+H is the symbol's H-th bar after d
  (H counts bars of the asset's own calendar: crypto days, equity sessions). Null when
  there is no such bar (delisted, end of data) or a gap on the way is larger than the
  calendar's normal gaps (``ForecastConfig.max_normal_gap_days``: a weekend or holiday is
  normal on an exchange, a missing week is not);
- volatility target: realized volatility over the next H bars,
  ``sqrt(mean(log_ret[d+1..d+H] ** 2) * periods_per_year)`` (zero-mean realized variance,
  the standard estimator; it is defined for H = 1 too, where a sample std is not).

With ``target_scaling`` (default) the return model learns ``label / (sigma_d * sqrt(H))``
where sigma_d is the symbol's trailing daily volatility known at d: the pooled quantiles are
then comparable between PAXG and SHIB, and predictions are scaled back.

Walk-forward evaluation lives in :mod:`portfolio_pipeline.forecasting.walkforward`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

import numpy as np
import polars as pl

from portfolio_pipeline.forecasting.config import (
    RETURN_KIND,
    TARGET_RETURN,
    TARGET_VOLATILITY,
    ForecastConfig,
    ForecastInputError,
)
from portfolio_pipeline.market.calendar import gap_free_ahead

SCALE_FLOOR = 1e-4  # daily volatility floor for target scaling (a flat price has sigma 0)
_PRIVATE = ("_close", "_scale", "_label_end")  # design columns that are never features


@dataclass(frozen=True)
class ModelInputs:
    """Design frame of one horizon: inputs, labels and the names of the feature columns.

    ``frame`` has symbol, date, the feature columns, ``_close``, ``_scale`` (trailing daily
    volatility, for target scaling), ``_label_end`` (date of the bar H after d),
    ``target_log_return`` and
    ``target_realized_vol`` (null where the future is not known yet), sorted by (date, symbol).
    """

    frame: pl.DataFrame
    feature_columns: tuple[str, ...]
    horizon_days: int
    config: ForecastConfig


def _describe(rows: pl.DataFrame, limit: int = 5) -> str:
    shown = [f"{r['symbol']} {r['date']}" for r in rows.head(limit).iter_rows(named=True)]
    more = f" (+{rows.height - limit} more)" if rows.height > limit else ""
    return ", ".join(shown) + more


def _check_keyed_frame(frame: pl.DataFrame, name: str, required: Sequence[str]) -> None:
    missing = [c for c in ("symbol", "date", *required) if c not in frame.columns]
    if missing:
        raise ForecastInputError(f"{name} frame lacks required columns {missing}")
    if frame.schema["date"] != pl.Date:
        raise ForecastInputError(f"{name}.date must be polars Date, got {frame.schema['date']}")
    duplicated = frame.group_by("symbol", "date").len().filter(pl.col("len") > 1)
    if duplicated.height:
        raise ForecastInputError(
            f"{name} has duplicate (symbol, date) rows: {_describe(duplicated.sort('symbol', 'date'))}"
        )


def _validate_ohlcv(ohlcv: pl.DataFrame) -> None:
    _check_keyed_frame(ohlcv, "ohlcv", ["close"])
    bad = ohlcv.filter(pl.col("close").is_null() | (pl.col("close") <= 0)).sort("symbol", "date")
    if bad.height:
        raise ForecastInputError(f"ohlcv rule broken (close must be > 0): {_describe(bad)}")


def _check_horizon(horizon: int) -> None:
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive number of days, got {horizon!r}")


def ohlcv_derived_frame(
    ohlcv: pl.DataFrame, horizon: int, config: ForecastConfig | None = None
) -> pl.DataFrame:
    """Labels, target scale and market-wide inputs from the raw OHLCV, one row per (symbol, date).

    Returns
    -------
    polars.DataFrame
        Shape (n_ohlcv_rows, 16): symbol, date, _close, _scale, _label_end,
        target_log_return, target_realized_vol, own_daily_vol, own_excess_log_ret_5d,
        xs_mean_log_ret_1d, xs_mean_log_ret_5d, xs_std_log_ret_1d, mkt_log_ret_1d,
        mkt_log_ret_5d, mkt_log_ret_20d, mkt_vol_20d. Labels need the close H bars after d
        and no abnormal gap in between; otherwise they (and ``_label_end``, the date of
        that bar) are null.
    """
    _check_horizon(horizon)
    config = config or ForecastConfig()
    _validate_ohlcv(ohlcv)
    per_symbol = _per_symbol_labels(ohlcv, horizon, config)
    per_date, market = _cross_section_and_market(per_symbol, config)
    return (
        per_symbol.join(per_date, on="date", how="left")
        .join(market, on="date", how="left")
        .with_columns(
            # A freshly listed symbol has no trailing volatility yet: use that day's median.
            pl.col("own_daily_vol")
            .fill_null(pl.col("_median_daily_vol"))
            .clip(lower_bound=SCALE_FLOOR)
            .alias("_scale"),
            (pl.col("log_ret_5d") - pl.col("xs_mean_log_ret_5d")).alias("own_excess_log_ret_5d"),
        )
        .select(
            "symbol",
            "date",
            pl.col("close").alias("_close"),
            "_scale",
            "_label_end",
            TARGET_RETURN,
            TARGET_VOLATILITY,
            "own_daily_vol",
            "own_excess_log_ret_5d",
            "xs_mean_log_ret_1d",
            "xs_mean_log_ret_5d",
            "xs_std_log_ret_1d",
            "mkt_log_ret_1d",
            "mkt_log_ret_5d",
            "mkt_log_ret_20d",
            "mkt_vol_20d",
        )  # fmt: skip
    )


def _cross_section_and_market(
    per_symbol: pl.DataFrame, config: ForecastConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per date: the cross-sectional return moments and median volatility, and the market
    symbol's returns and 20-day volatility (both from rows dated <= d only)."""
    ppy = config.periods_per_year
    log_ret = pl.col("log_ret_1d")
    per_date = per_symbol.group_by("date").agg(
        log_ret.mean().alias("xs_mean_log_ret_1d"),
        pl.col("log_ret_5d").mean().alias("xs_mean_log_ret_5d"),
        log_ret.std().alias("xs_std_log_ret_1d"),
        pl.col("own_daily_vol").median().alias("_median_daily_vol"),
    )
    market = per_symbol.filter(pl.col("symbol") == config.market_symbol).select(
        "date",
        log_ret.alias("mkt_log_ret_1d"),
        pl.col("log_ret_5d").alias("mkt_log_ret_5d"),
        pl.col("log_ret_20d").alias("mkt_log_ret_20d"),
        (pl.col("_vol_20d_daily") * math.sqrt(ppy)).alias("mkt_vol_20d"),
    )
    return per_date, market


def _per_symbol_labels(ohlcv: pl.DataFrame, horizon: int, config: ForecastConfig) -> pl.DataFrame:
    """Each symbol's returns, trailing volatilities and H-bar labels (null across a gap)."""
    ppy = config.periods_per_year
    close = pl.col("close")
    log_ret = pl.col("log_ret_1d")
    per_symbol = (
        ohlcv.select(pl.col("symbol").cast(pl.String), "date", pl.col("close").cast(pl.Float64))
        .sort("symbol", "date")
        .with_columns((close / close.shift(1)).log().over("symbol").alias("log_ret_1d"))
        .with_columns(
            (close / close.shift(5)).log().over("symbol").alias("log_ret_5d"),
            (close / close.shift(20)).log().over("symbol").alias("log_ret_20d"),
            log_ret.rolling_std(config.scale_window, min_samples=10)
            .over("symbol")
            .alias("own_daily_vol"),
            log_ret.rolling_std(20, min_samples=20).over("symbol").alias("_vol_20d_daily"),
            # Forward window d+1..d+H BARS: valid only if the bar H ahead exists and no gap
            # on the way is larger than the calendar's normal gaps (a weekend is fine on an
            # exchange, a missing week is not).
            gap_free_ahead(horizon, config.max_normal_gap_days).alias("_window_complete"),
            pl.col("date").shift(-horizon).over("symbol").alias("_date_ahead"),
            (close.shift(-horizon) / close).log().over("symbol").alias("_fwd_log_ret"),
            (log_ret**2)
            .rolling_sum(horizon, min_samples=horizon)
            .shift(-horizon)
            .over("symbol")
            .alias("_fwd_sum_sq"),
        )
    )
    complete = pl.col("_window_complete")
    return per_symbol.with_columns(
        pl.when(complete).then(pl.col("_fwd_log_ret")).alias(TARGET_RETURN),
        pl.when(complete)
        .then((pl.col("_fwd_sum_sq") / horizon * ppy).sqrt())
        .alias(TARGET_VOLATILITY),
        # The day the label is known: the close H bars later.
        pl.when(complete).then(pl.col("_date_ahead")).alias("_label_end"),
    )


def _sentiment_inputs(frame: pl.DataFrame, sentiment: pl.DataFrame) -> pl.DataFrame:
    """Left-join daily sentiment: per-symbol columns on (symbol, date), ``market_*`` on date."""
    _check_keyed_frame(sentiment, "sentiment", [])
    numeric = [
        c
        for c, t in sentiment.schema.items()
        if c not in ("symbol", "date") and (t.is_numeric() or t == pl.Boolean)
    ]
    market_cols = [c for c in numeric if c.startswith("market_")]
    symbol_cols = [c for c in numeric if c not in market_cols]
    clash = [c for c in numeric + ["has_news"] if c in frame.columns]
    if clash:
        raise ForecastInputError(f"sentiment columns {clash} clash with feature columns")
    per_symbol = sentiment.select(
        "symbol", "date", *[pl.col(c).cast(pl.Float64) for c in symbol_cols]
    ).with_columns(pl.lit(1, dtype=pl.Int8).alias("_has_row"))
    out = frame.join(per_symbol, on=["symbol", "date"], how="left")
    if market_cols:
        per_date = sentiment.group_by("date").agg(
            [pl.col(c).cast(pl.Float64).drop_nulls().first() for c in market_cols]
        )
        out = out.join(per_date, on="date", how="left")
    has_news = (
        (pl.col("news_count").fill_null(0) > 0)
        if "news_count" in symbol_cols
        else pl.col("_has_row").is_not_null()
    )
    return out.with_columns(
        has_news.cast(pl.Int8).alias("has_news"),
        *[pl.col(c).fill_null(0.0) for c in symbol_cols + market_cols],
    ).drop("_has_row")


def build_model_inputs(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
) -> ModelInputs:
    """Join features, OHLCV-derived market inputs, labels and optional sentiment.

    Parameters
    ----------
    features : polars.DataFrame
        Shape (n_rows, k): symbol, date and any numeric/boolean feature columns (e.g.
        ``compute_market_features``). Each row must have an OHLCV row with the same key.
    ohlcv : polars.DataFrame
        Raw daily OHLCV (symbol, date, close at least), used for labels and market inputs.
    horizon : int
        Forecast horizon H in days.
    sentiment : polars.DataFrame, optional
        Daily sentiment (symbol, date, numeric columns); absent days -> 0 and has_news = 0.
    config : ForecastConfig, optional

    Returns
    -------
    ModelInputs
        One row per feature row, sorted by (date, symbol).
    """
    _check_horizon(horizon)
    config = config or ForecastConfig()
    _check_keyed_frame(features, "features", [])
    derived = ohlcv_derived_frame(ohlcv, horizon, config)
    feature_numeric, derived_inputs = _input_columns(features, derived, config)
    frame = _join_features_to_prices(features, derived, feature_numeric)
    sentiment_inputs: list[str] = []
    if sentiment is not None:
        before = set(frame.columns)
        frame = _sentiment_inputs(frame, sentiment)
        sentiment_inputs = [c for c in frame.columns if c not in before]
    feature_columns = (
        *_symbol_feature(config),
        *feature_numeric,
        *derived_inputs,
        *sentiment_inputs,
    )
    return ModelInputs(
        frame=frame.sort("date", "symbol"),
        feature_columns=feature_columns,
        horizon_days=horizon,
        config=config,
    )


def _input_columns(
    features: pl.DataFrame, derived: pl.DataFrame, config: ForecastConfig
) -> tuple[list[str], list[str]]:
    """(numeric feature columns the model sees, OHLCV-derived input columns); they may not
    share a name, nor take a target's."""
    feature_numeric = [
        c
        for c, t in features.schema.items()
        if c not in ("symbol", "date")
        and c not in config.exclude_columns
        and (t.is_numeric() or t == pl.Boolean)
    ]
    derived_inputs = [
        c for c in derived.columns if c not in ("symbol", "date") and c not in _PRIVATE
    ]
    derived_inputs = [c for c in derived_inputs if not c.startswith("target_")]
    clash = sorted(set(feature_numeric) & set(derived_inputs + [TARGET_RETURN, TARGET_VOLATILITY]))
    if clash:
        raise ForecastInputError(f"feature columns {clash} clash with forecast input names")
    return feature_numeric, derived_inputs


def _join_features_to_prices(
    features: pl.DataFrame, derived: pl.DataFrame, feature_numeric: list[str]
) -> pl.DataFrame:
    """The feature rows (as Float64) left-joined to the OHLCV-derived frame; every feature
    row must have a close."""
    frame = features.select(
        pl.col("symbol").cast(pl.String),
        "date",
        *[pl.col(c).cast(pl.Float64) for c in feature_numeric],
    ).join(derived, on=["symbol", "date"], how="left")
    orphans = frame.filter(pl.col("_close").is_null()).sort("symbol", "date")
    if orphans.height:
        raise ForecastInputError(
            f"feature rows without an OHLCV close (rule: every feature row has a price): "
            f"{_describe(orphans)}"
        )
    return frame


def _symbol_feature(config: ForecastConfig) -> tuple[str, ...]:
    """("symbol",) when the model sees the symbol identity, () otherwise."""
    return () if config.symbol_encoding == "none" else ("symbol",)


def training_rows(inputs: ModelInputs, kind: str, label_known_by: date | None) -> pl.DataFrame:
    """Rows usable for training: target known by ``label_known_by`` (d + H <= it), no null scale.

    ``label_known_by=None`` takes every labelled row. This is the ONE place the purge rule
    lives: a training row's label window (d, d+H] must end no later than the cutoff. With
    ``config.train_window_days`` > 0, only the as_of dates of the last ``train_window_days``
    days up to the last qualifying as_of are kept (a rolling window; it depends on nothing
    after the cutoff either).
    """
    target = TARGET_RETURN if kind == RETURN_KIND else TARGET_VOLATILITY
    rows = inputs.frame.filter(pl.col(target).is_not_null() & pl.col("_scale").is_not_null())
    if label_known_by is not None:
        rows = rows.filter(pl.col("_label_end") <= label_known_by)
    window = inputs.config.train_window_days
    if window and rows.height:
        last = cast(date, rows["date"].max())
        rows = rows.filter(pl.col("date") > last - timedelta(days=window))
    return rows


def _row_uniforms(rows: pl.DataFrame, seed: int) -> np.ndarray:
    """A uniform [0, 1) number per row from (symbol, date, seed) alone (splitmix64): the same
    row gets the same number in every fold and every run, whatever else is in the frame."""
    codes = {
        symbol: int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "little")
        for symbol in rows["symbol"].unique().to_list()
    }
    symbol = rows["symbol"].replace_strict(codes, return_dtype=pl.UInt64).to_numpy()
    day = rows["date"].cast(pl.Int32).to_numpy().astype(np.uint64)
    with np.errstate(over="ignore"):
        x = symbol ^ (day * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(seed)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def thin_rows(rows: pl.DataFrame, max_rows: int, seed: int) -> pl.DataFrame:
    """About ``max_rows`` of ``rows``, kept uniformly over time and symbols (0: all rows).

    A row is kept when its :func:`_row_uniforms` number is below ``max_rows / rows.height``:
    which rows survive depends only on the rows themselves (known by the fit's cutoff), never
    on later data.
    """
    if max_rows == 0 or rows.height <= max_rows:
        return rows
    return rows.filter(pl.Series(_row_uniforms(rows, seed) < max_rows / rows.height))
