"""CatBoost return and volatility forecasts: model inputs, labels, fitting, versioning.

Pure (no dagster); CatBoost and matplotlib are imported inside the functions that use them.

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
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from portfolio_pipeline.market.calendar import gap_free_ahead

# Bump when a change here would change a trained model given the same data and parameters.
# 2026.1: horizons count bars; .2: symbol encoding, early stopping; .3: row cap, rolling window
CODE_VERSION = "forecast-2026.3"
QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
DEFAULT_HORIZONS: tuple[int, ...] = (1, 8)
RETURN_KIND = "return_quantiles"
VOLATILITY_KIND = "volatility"

# Columns in price (or price x volume) units: their level says which year and which coin it
# is, not what happens next, so a pooled tree would memorise regimes. Excluded by default.
PRICE_LEVEL_COLUMNS: tuple[str, ...] = (
    "open", "high", "low", "close", "volume", "quote_volume", "num_trades",
    "taker_buy_base_volume", "taker_buy_quote_volume", "atr_14", "macd", "macd_signal",
    "macd_hist",
)  # fmt: skip
# Columns that mostly encode WHEN a row is (listing age, number of listed coins, calendar
# month, liquidity level that grows over the years): a pooled tree uses them to memorise
# regimes of the training years. Spotted in a first 2020-2025 run; the choice was then made
# on a validation year that precedes every test fold (2019, trained on 2017-2018): 8-day
# pinball loss 0.050 with them, 0.040 without.
TIME_PROXY_COLUMNS: tuple[str, ...] = (
    "history_days", "xs_n_symbols", "month", "day_of_month", "log_dollar_volume_20d",
)  # fmt: skip

# How the symbol enters the model. "one_hot": a categorical CatBoost one-hot encodes (cost
# grows with the number of symbols; nothing of the target leaks into it). "target_stats":
# CatBoost's ordered target statistics (no leak either, but ~2.5x the fit time at 100
# symbols, measured). "none": no symbol identity, the model is the same function of the
# inputs for every symbol, so its cost does not depend on how many there are.
SYMBOL_ENCODINGS: frozenset[str] = frozenset({"one_hot", "target_stats", "none"})

SCALE_FLOOR = 1e-4  # daily volatility floor for target scaling (a flat price has sigma 0)
_PRIVATE = ("_close", "_scale", "_label_end")  # design columns that are never features
TARGET_RETURN = "target_log_return"
TARGET_VOLATILITY = "target_realized_vol"


class ForecastInputError(ValueError):
    """An input frame breaks a rule; the message names the rule, symbols and dates."""


@dataclass(frozen=True)
class ForecastConfig:
    """Model and input parameters (everything that changes a model, except the data).

    The tree parameters are chosen a priori (not tuned on the evaluation windows):
    shallow-ish trees and a small learning rate, because daily returns are mostly noise.
    ``symbol_encoding="none"`` with early stopping (``early_stopping_days=120``) is about 2x
    cheaper per fit and won on the 2019 validation folds (pinball H=1 0.01177 -> 0.01152, H=8
    0.0389 -> 0.0342), but on the later walk-forward folds it lost most of the 8-day ranking
    signal (rank IC 0.067 -> 0.017) that the recommendation gate and ``forecast_mv`` rely on,
    so the defaults stay one-hot with 200 trees (README, "Scaling out"; that decision was
    made after seeing those later folds).

    What keeps a fit's cost bounded instead (issue 15, chosen on the 2023 validation year
    only, ``benchmarks.forecast_choice``): ``max_fit_rows`` thins the fit rows uniformly over
    the whole history above a cap. A rolling window (``train_window_days``, off by default)
    bounds it too but lost on validation (8-day pinball +5% with 3 years, +33% with 2).
    """

    iterations: int = 200
    depth: int = 5
    learning_rate: float = 0.05
    l2_leaf_reg: float = 3.0
    border_count: int = 64
    # How the model sees WHICH symbol a row is (see :data:`SYMBOL_ENCODINGS`).
    symbol_encoding: str = "one_hot"
    # Only used with symbol_encoding="one_hot": raised so that the symbol stays one-hot up to
    # 255 symbols (CatBoost silently switches to target statistics above it).
    one_hot_max_size: int = 255
    random_seed: int = 42
    thread_count: int = 2
    target_scaling: bool = True
    # Split-conformal calibration of the q10..q90 band (conformalized quantile regression,
    # Romano et al. 2019): the last ``calibration_days`` of labelled rows are held out of the
    # fit and used to widen (or narrow) the band to 80% coverage. 0 disables it.
    calibration_days: int = 120
    # Early stopping on a time-ordered holdout: the last ``early_stopping_days`` of the fit
    # rows (before the calibration window; rows whose label overlaps them are purged) choose
    # the number of trees, at most ``iterations``, stopping after ``early_stopping_rounds``
    # without improvement. 0 (default) disables it (``iterations`` trees): see the README on
    # why the faster setting is not the default.
    early_stopping_days: int = 0
    early_stopping_rounds: int = 30
    # False: keep the early-stopped model, fitted without the holdout; its cost is at most
    # iterations + rounds trees. True: refit on every fit row with the chosen count (about
    # twice the CPU; worse pinball loss on the 2019 validation folds).
    early_stopping_refit: bool = False
    # Rolling training window: a fit sees the labelled as_of dates of the last
    # ``train_window_days`` calendar days up to its cutoff (calibration rows included), so a
    # fit's cost stops growing with the history and a walk-forward's cost grows linearly
    # with it. 0 = expanding (every labelled row since the start of the data).
    train_window_days: int = 0
    # Cap on the rows one fit learns from (0 = no cap): above it, the fit rows (not the
    # calibration rows) are thinned uniformly over the whole window, each row kept or not by
    # a hash of (symbol, date, seed), so the whole history keeps its say while the cost of a
    # fit stops growing with it.
    # Default 150k: never binds on the 21-symbol sample (its fits have <= ~45k rows); at 100
    # symbols x 10 years it keeps ~45% of the last fold's rows. Thinning to ~50% passed the
    # validation-year rule of benchmarks.forecast_choice, thinning to ~28% did not (README).
    max_fit_rows: int = 150_000
    # The market series (market.context.choose_benchmark): BTCUSDT for crypto.
    market_symbol: str = "BTCUSDT"
    scale_window: int = 60
    periods_per_year: int = 365
    # Largest normal gap in calendar days between two bars (market.calendar): 1 for a 7-day
    # market, 4 on business days (weekend + one holiday). Labels across a larger gap are null.
    max_normal_gap_days: int = 1
    exclude_columns: tuple[str, ...] = PRICE_LEVEL_COLUMNS + TIME_PROXY_COLUMNS

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.depth < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid CatBoost parameters in {self}")
        if self.periods_per_year <= 0:
            raise ValueError(f"periods_per_year must be positive, got {self.periods_per_year}")
        if self.calibration_days < 0:
            raise ValueError(f"calibration_days must be >= 0, got {self.calibration_days}")
        if self.max_normal_gap_days < 1:
            raise ValueError(f"max_normal_gap_days must be >= 1, got {self.max_normal_gap_days}")
        if self.scale_window < 2:
            raise ValueError(f"scale_window must be >= 2, got {self.scale_window}")
        if self.early_stopping_days < 0 or self.early_stopping_rounds < 1:
            raise ValueError(
                "early_stopping_days must be >= 0 and early_stopping_rounds >= 1, got "
                f"{self.early_stopping_days} and {self.early_stopping_rounds}"
            )
        if self.train_window_days < 0 or 0 < self.train_window_days <= self.calibration_days:
            raise ValueError(
                "train_window_days must be 0 (expanding) or longer than calibration_days "
                f"({self.calibration_days}), got {self.train_window_days}"
            )
        if self.max_fit_rows < 0 or 0 < self.max_fit_rows < 1000:
            raise ValueError(f"max_fit_rows must be 0 (no cap) or >= 1000, got {self.max_fit_rows}")
        if self.symbol_encoding not in SYMBOL_ENCODINGS:
            raise ValueError(
                f"symbol_encoding must be one of {sorted(SYMBOL_ENCODINGS)}, "
                f"got {self.symbol_encoding!r}"
            )

    def catboost_params(self, loss_function: str) -> dict[str, Any]:
        return {
            "loss_function": loss_function,
            "iterations": self.iterations,
            "depth": self.depth,
            "learning_rate": self.learning_rate,
            "l2_leaf_reg": self.l2_leaf_reg,
            "border_count": self.border_count,
            **_symbol_encoding_params(self.symbol_encoding, self.one_hot_max_size),
            "boosting_type": "Plain",
            "random_seed": self.random_seed,
            "thread_count": self.thread_count,
            "allow_writing_files": False,
            "verbose": 0,
        }


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


@dataclass(frozen=True)
class ForecastModel:
    """A fitted CatBoost model and the metadata needed to use, version and register it."""

    booster: Any  # catboost.CatBoostRegressor
    kind: str
    horizon_days: int
    feature_columns: tuple[str, ...]
    config: ForecastConfig
    train_start: date
    train_end: date
    n_train_rows: int
    data_fingerprint: str
    model_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """Everything that determines the model besides the data (JSON-serialisable)."""
        return {
            "kind": self.kind,
            "horizon_days": self.horizon_days,
            "loss_function": _loss_function(self.kind),
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()},
        }


# --------------------------------------------------------------------------------------
# Inputs and labels
# --------------------------------------------------------------------------------------


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
    ppy = config.periods_per_year
    log_ret = pl.col("log_ret_1d")
    per_symbol = _per_symbol_labels(ohlcv, horizon, config)
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


# --------------------------------------------------------------------------------------
# Fitting and prediction
# --------------------------------------------------------------------------------------


def _loss_function(kind: str) -> str:
    if kind == RETURN_KIND:
        return "MultiQuantile:alpha=" + ",".join(str(q) for q in QUANTILES)
    if kind == VOLATILITY_KIND:
        return "RMSE"
    raise ValueError(f"unknown model kind {kind!r}")


def _symbol_feature(config: ForecastConfig) -> tuple[str, ...]:
    """("symbol",) when the model sees the symbol identity, () otherwise."""
    return () if config.symbol_encoding == "none" else ("symbol",)


def _symbol_encoding_params(encoding: str, one_hot_max_size: int) -> dict[str, Any]:
    """CatBoost parameters for the symbol column under ``encoding``."""
    if encoding == "target_stats":
        # one_hot_max_size=1: every categorical goes through ordered target statistics.
        return {"one_hot_max_size": 1}
    return {"one_hot_max_size": one_hot_max_size}


def _categorical_columns(feature_columns: Sequence[str]) -> list[str]:
    return ["symbol"] if "symbol" in feature_columns else []


def _to_pandas(frame: pl.DataFrame, feature_columns: Sequence[str]):
    """CatBoost wants pandas with the categorical ``symbol`` (if used) as str, floats elsewhere."""
    return frame.select(
        *[pl.col(c).cast(pl.String) if c == "symbol" else pl.col(c) for c in feature_columns]
    ).to_pandas()


def _fingerprint(frame: pl.DataFrame, columns: Sequence[str]) -> str:
    """sha256 of the exact training rows (dates, symbols, inputs, target), hex."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(frame["symbol"].to_list()).encode())
    digest.update(frame["date"].cast(pl.Int32).to_numpy().tobytes())
    numeric = [c for c in columns if c != "symbol"]
    values = np.ascontiguousarray(frame.select(numeric).to_numpy().astype(np.float64))
    digest.update(values.tobytes())
    return digest.hexdigest()


def model_version_for(
    kind: str,
    horizon: int,
    config: ForecastConfig,
    feature_columns: Sequence[str],
    train_start: date,
    train_end: date,
    data_fingerprint: str,
) -> str:
    """Short sha256 of the code version, kind, horizon, parameters, features and data window."""
    payload = {
        "code_version": CODE_VERSION,
        "kind": kind,
        "horizon_days": horizon,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "feature_columns": list(feature_columns),
        "train_start": train_start.isoformat(),
        "train_end": train_end.isoformat(),
        "data": data_fingerprint,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
        rows = rows.filter(pl.col("date") > rows["date"].max() - timedelta(days=window))
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


def _scaled_target(
    rows: pl.DataFrame, kind: str, horizon: int, config: ForecastConfig
) -> np.ndarray:
    if kind == RETURN_KIND:
        y = rows[TARGET_RETURN].to_numpy()
        if config.target_scaling:
            y = y / (rows["_scale"].to_numpy() * math.sqrt(horizon))
        return y
    # Volatility: learn the ratio of future realized variance to the trailing variance
    # (RMSE on variance is unbiased for E[variance]); winsorise the training target at its
    # 99.5% quantile so listing-day candles do not dominate the squared loss.
    ratio = (rows[TARGET_VOLATILITY].to_numpy() ** 2) / (
        (rows["_scale"].to_numpy() ** 2) * config.periods_per_year
    )
    return np.minimum(ratio, np.quantile(ratio, 0.995))


def fit_model(
    inputs: ModelInputs, kind: str = RETURN_KIND, label_known_by: date | None = None
) -> ForecastModel:
    """Fit one global CatBoost model on the rows whose label is known by ``label_known_by``.

    For the return model with ``config.calibration_days > 0``, the rows whose as_of lies in
    the last ``calibration_days`` of the labelled window are held out of the fit (rows whose
    label would overlap them are purged) and give the conformal band adjustment.

    Raises
    ------
    ForecastInputError
        When no row qualifies (names the horizon and cutoff).
    """
    rows = training_rows(inputs, kind, label_known_by)
    horizon, config = inputs.horizon_days, inputs.config
    if rows.height < 10:
        raise ForecastInputError(
            f"{kind} H={horizon}: only {rows.height} labelled training rows with labels known "
            f"by {label_known_by} (need >= 10)"
        )
    fit_rows, calibration_rows = rows, None
    if kind == RETURN_KIND and config.calibration_days > 0:
        calibration_start = rows["date"].max() - timedelta(days=config.calibration_days - 1)
        fit_rows = rows.filter(pl.col("_label_end") <= calibration_start)
        calibration_rows = rows.filter(pl.col("date") >= calibration_start)
        if fit_rows.height < 10:
            raise ForecastInputError(
                f"{kind} H={horizon}: only {fit_rows.height} rows before the calibration "
                f"window starting {calibration_start} (cutoff {label_known_by})"
            )
    fit_rows = thin_rows(fit_rows, config.max_fit_rows, config.random_seed)
    stopped, iterations = _early_stopping(fit_rows, inputs.feature_columns, kind, horizon, config)
    if stopped is not None and not config.early_stopping_refit:
        booster = stopped
    else:
        booster = _fit_booster(fit_rows, inputs.feature_columns, kind, horizon, config, iterations)
    # ISO string (the metadata sidecar is JSON): the walk-forward checks its embargo on it.
    extra: dict[str, Any] = {
        "train_label_end": rows["_label_end"].max().isoformat(),
        "iterations": iterations,
        "n_fit_rows": fit_rows.height,
    }
    if calibration_rows is not None:
        extra["conformal_delta"] = _conformal_delta(
            booster, calibration_rows, inputs.feature_columns, horizon, config
        )
        extra["n_calibration_rows"] = calibration_rows.height
    train_start, train_end = rows["date"].min(), rows["date"].max()
    target = TARGET_RETURN if kind == RETURN_KIND else TARGET_VOLATILITY
    fingerprint = _fingerprint(rows, [*inputs.feature_columns, "_scale", target])
    return ForecastModel(
        booster=booster,
        kind=kind,
        horizon_days=horizon,
        feature_columns=inputs.feature_columns,
        config=config,
        train_start=train_start,
        train_end=train_end,
        n_train_rows=rows.height,
        data_fingerprint=fingerprint,
        model_version=model_version_for(
            kind, horizon, config, inputs.feature_columns, train_start, train_end, fingerprint
        ),
        extra=extra,
    )


def _pool(rows: pl.DataFrame, feature_columns, kind, horizon, config):
    from catboost import Pool

    y = _scaled_target(rows, kind, horizon, config)
    return Pool(
        _to_pandas(rows, feature_columns), y, cat_features=_categorical_columns(feature_columns)
    )


def _fit_booster(rows, feature_columns, kind, horizon, config, iterations: int | None = None):
    from catboost import CatBoostRegressor

    params = config.catboost_params(_loss_function(kind))
    if iterations is not None:
        params["iterations"] = iterations
    booster = CatBoostRegressor(**params)
    booster.fit(_pool(rows, feature_columns, kind, horizon, config))
    return booster


def _early_stopping(rows, feature_columns, kind, horizon, config) -> tuple[Any, int]:
    """(stopped booster or None, number of trees) chosen on the last ``early_stopping_days``
    of ``rows`` (time-ordered).

    The holdout is the last ``early_stopping_days`` as_of dates of ``rows``; the rows fitted
    to choose the count end with labels known by the holdout's first day (the purge rule of
    :func:`training_rows`), so the holdout's labels never leak into that fit. Falls back to
    ``config.iterations`` when either side has fewer than 10 rows.
    """
    if config.early_stopping_days == 0 or rows.height == 0:
        return None, config.iterations
    from catboost import CatBoostRegressor

    holdout_start = rows["date"].max() - timedelta(days=config.early_stopping_days - 1)
    fit_part = rows.filter(pl.col("_label_end") <= holdout_start)
    holdout = rows.filter(pl.col("date") >= holdout_start)
    if fit_part.height < 10 or holdout.height < 10:
        return None, config.iterations
    params = config.catboost_params(_loss_function(kind))
    params.update(od_type="Iter", od_wait=config.early_stopping_rounds, use_best_model=True)
    booster = CatBoostRegressor(**params)
    booster.fit(
        _pool(fit_part, feature_columns, kind, horizon, config),
        eval_set=_pool(holdout, feature_columns, kind, horizon, config),
    )
    return booster, int(booster.get_best_iteration()) + 1


def _raw_quantiles(booster, rows: pl.DataFrame, feature_columns) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs in target units, sorted per row, and whether sorting was needed."""
    raw = np.asarray(booster.predict(_to_pandas(rows, feature_columns)), dtype=float)
    raw = raw.reshape(rows.height, len(QUANTILES))
    return np.sort(raw, axis=1), np.any(np.diff(raw, axis=1) < 0, axis=1)


def _conformal_delta(booster, rows, feature_columns, horizon, config) -> float:
    """CQR adjustment: the (1 - alpha)(1 + 1/n) quantile of max(q10 - y, y - q90)."""
    quantiles, _ = _raw_quantiles(booster, rows, feature_columns)
    y = _scaled_target(rows, RETURN_KIND, horizon, config)
    scores = np.maximum(quantiles[:, 0] - y, y - quantiles[:, 2])
    miss_rate = QUANTILES[0] + (1.0 - QUANTILES[2])
    level = min(1.0, (1.0 - miss_rate) * (1.0 + 1.0 / len(scores)))
    return float(np.quantile(scores, level, method="higher"))


def predict_quantiles(model: ForecastModel, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Quantile log-return forecasts for design rows.

    Returns
    -------
    quantiles : numpy.ndarray
        Shape (n_rows, 3): q10, q50, q90 of the H-day log return, sorted per row.
    reordered : numpy.ndarray
        Shape (n_rows,), bool: the raw outputs crossed and sorting was needed.
    """
    if model.kind != RETURN_KIND:
        raise ValueError(f"predict_quantiles needs a {RETURN_KIND} model, got {model.kind}")
    quantiles, reordered = _raw_quantiles(model.booster, rows, model.feature_columns)
    delta = model.extra.get("conformal_delta", 0.0)
    # A negative delta narrows the band; it may not cross the median.
    quantiles[:, 0] = np.minimum(quantiles[:, 0] - delta, quantiles[:, 1])
    quantiles[:, 2] = np.maximum(quantiles[:, 2] + delta, quantiles[:, 1])
    if model.config.target_scaling:
        quantiles = quantiles * (rows["_scale"].to_numpy() * math.sqrt(model.horizon_days))[:, None]
    return quantiles, reordered


def predict_volatility_values(model: ForecastModel, rows: pl.DataFrame) -> np.ndarray:
    """Annualised volatility forecasts over the next H days, shape (n_rows,)."""
    if model.kind != VOLATILITY_KIND:
        raise ValueError(f"needs a {VOLATILITY_KIND} model, got {model.kind}")
    ratio = np.asarray(model.booster.predict(_to_pandas(rows, model.feature_columns)), dtype=float)
    ratio = np.clip(ratio.reshape(rows.height), 0.0, None)
    return rows["_scale"].to_numpy() * np.sqrt(ratio * model.config.periods_per_year)


def fit_task(inputs: ModelInputs, task: tuple[int, str, date | None]) -> ForecastModel:
    """Fit one model of a batch: ``task`` = (horizon, kind, label_known_by or None), on the
    inputs of that horizon.

    Module level, so that Ray workers can import it (:func:`fit_models`).
    """
    horizon, kind, label_known_by = task
    if inputs.horizon_days != horizon:
        raise ValueError(f"task for H={horizon} got the inputs of H={inputs.horizon_days}")
    return fit_model(inputs, kind, label_known_by=label_known_by)


def fit_models(
    inputs_by_horizon: dict[int, ModelInputs],
    tasks: Sequence[tuple[int, str, date | None]],
    backend: str | None = None,
) -> list[ForecastModel]:
    """Fit independent models (folds, horizons, final models) in this process or as Ray tasks.

    Each fit depends only on its horizon's inputs and its cutoff (CatBoost is deterministic
    for a given seed and thread count), so both backends give the same models, in the order
    of ``tasks`` (:mod:`portfolio_pipeline.common.parallel`; each horizon's inputs go to Ray's
    object store once for the whole batch).
    """
    from portfolio_pipeline.common.parallel import map_tasks

    cpus = max(inputs.config.thread_count for inputs in inputs_by_horizon.values())
    return map_tasks(
        fit_task,
        inputs_by_horizon,
        list(tasks),
        backend=backend,
        cpus_per_task=cpus,
        shared_key=lambda task: task[0],  # a task ships its own horizon's frame only
    )


def fit_final_models(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizons: Sequence[int],
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    kind: str = RETURN_KIND,
    backend: str | None = None,
) -> list[ForecastModel]:
    """:func:`fit_final_model` for every horizon, as one batch of (Ray) tasks, in order."""
    inputs = {
        h: build_model_inputs(features, ohlcv, h, sentiment=sentiment, config=config)
        for h in dict.fromkeys(horizons)
    }
    return fit_models(inputs, [(h, kind, None) for h in horizons], backend)


def fit_final_model(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    kind: str = RETURN_KIND,
) -> ForecastModel:
    """Train on every row whose H-day label is known (d + H <= the last OHLCV date)."""
    return fit_model(
        build_model_inputs(features, ohlcv, horizon, sentiment=sentiment, config=config), kind
    )


def _rows_at(model: ForecastModel, features, ohlcv, as_of, sentiment) -> pl.DataFrame:
    inputs = build_model_inputs(
        features, ohlcv, model.horizon_days, sentiment=sentiment, config=model.config
    )
    missing = [c for c in model.feature_columns if c not in inputs.feature_columns]
    if missing:
        raise ForecastInputError(f"inputs lack the model's feature columns {missing}")
    # Only symbols with a row at as_of are still trading: delisted ones get no forecast.
    rows = inputs.frame.filter(pl.col("date") == as_of)
    if rows.height == 0:
        raise ForecastInputError(f"no feature rows at as_of {as_of}: nothing to forecast")
    return rows.sort("symbol")


def predict_latest(
    model: ForecastModel,
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    as_of: date,
    *,
    sentiment: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Quantile forecasts at ``as_of`` for every symbol with a row at that date.

    Returns
    -------
    polars.DataFrame
        Target table ``ml.return_forecasts``: as_of, symbol, horizon_days, q10, q50, q90 (log
        return over the next H days), model_version, quantiles_reordered (bool).
    """
    rows = _rows_at(model, features, ohlcv, as_of, sentiment)
    quantiles, reordered = predict_quantiles(model, rows)
    return pl.DataFrame(
        {
            "as_of": rows["date"],
            "symbol": rows["symbol"],
            "horizon_days": pl.Series([model.horizon_days] * rows.height, dtype=pl.Int32),
            "q10": quantiles[:, 0],
            "q50": quantiles[:, 1],
            "q90": quantiles[:, 2],
            "model_version": [model.model_version] * rows.height,
            "quantiles_reordered": reordered,
        }
    )


def fit_volatility_model(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
) -> ForecastModel:
    """Volatility model on every labelled row (same inputs as the return model)."""
    return fit_final_model(
        features, ohlcv, horizon, sentiment=sentiment, config=config, kind=VOLATILITY_KIND
    )


def predict_volatility(
    model: ForecastModel,
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    as_of: date,
    *,
    sentiment: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Annualised volatility forecasts over the next H days at ``as_of``.

    Returns
    -------
    polars.DataFrame
        as_of, symbol, horizon_days, vol_forecast, trailing_vol (annualised, for context),
        model_version.
    """
    rows = _rows_at(model, features, ohlcv, as_of, sentiment)
    return pl.DataFrame(
        {
            "as_of": rows["date"],
            "symbol": rows["symbol"],
            "horizon_days": pl.Series([model.horizon_days] * rows.height, dtype=pl.Int32),
            "vol_forecast": predict_volatility_values(model, rows),
            "trailing_vol": rows["_scale"].to_numpy() * math.sqrt(model.config.periods_per_year),
            "model_version": [model.model_version] * rows.height,
        }
    )


# --------------------------------------------------------------------------------------
# Persistence, registry, diagnostics
# --------------------------------------------------------------------------------------


def model_metadata(model: ForecastModel) -> dict[str, Any]:
    return {
        "model_version": model.model_version,
        "code_version": CODE_VERSION,
        "kind": model.kind,
        "horizon_days": model.horizon_days,
        "feature_columns": list(model.feature_columns),
        "params": model.params,
        "train_start": model.train_start.isoformat(),
        "train_end": model.train_end.isoformat(),
        "n_train_rows": model.n_train_rows,
        "data_fingerprint": model.data_fingerprint,
        "extra": model.extra,
    }


def save_model(model: ForecastModel, directory: str | Path) -> Path:
    """Write ``<kind>_h<H>_<version>.cbm`` and a ``.json`` metadata sidecar; return the .cbm path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    artifact = directory / f"{model.kind}_h{model.horizon_days}_{model.model_version}.cbm"
    model.booster.save_model(str(artifact), format="cbm")
    artifact.with_suffix(".json").write_text(json.dumps(model_metadata(model), indent=2))
    return artifact


def load_model(artifact_path: str | Path) -> ForecastModel:
    """Load a model written by :func:`save_model` (the sidecar gives its metadata)."""
    from catboost import CatBoostRegressor

    artifact_path = Path(artifact_path)
    meta = json.loads(artifact_path.with_suffix(".json").read_text())
    if meta["code_version"] != CODE_VERSION:
        raise ForecastInputError(
            f"{artifact_path} was written by {meta['code_version']}, this code is {CODE_VERSION}"
        )
    booster = CatBoostRegressor()
    booster.load_model(str(artifact_path), format="cbm")
    config_fields = set(ForecastConfig.__dataclass_fields__)
    config_values = {k: v for k, v in meta["params"].items() if k in config_fields}
    config_values["exclude_columns"] = tuple(config_values.get("exclude_columns", ()))
    return ForecastModel(
        booster=booster,
        kind=meta["kind"],
        horizon_days=meta["horizon_days"],
        feature_columns=tuple(meta["feature_columns"]),
        config=ForecastConfig(**config_values),
        train_start=date.fromisoformat(meta["train_start"]),
        train_end=date.fromisoformat(meta["train_end"]),
        n_train_rows=meta["n_train_rows"],
        data_fingerprint=meta["data_fingerprint"],
        model_version=meta["model_version"],
        extra=meta.get("extra", {}),
    )


def registry_row(
    model: ForecastModel,
    artifact_path: str | Path | None,
    metrics: dict[str, Any] | None = None,
    trained_at: datetime | None = None,
) -> dict[str, Any]:
    """One ``ml.model_registry`` row (params and metrics as JSON strings)."""
    return {
        "model_version": model.model_version,
        "kind": f"{model.kind}_h{model.horizon_days}",
        "trained_at": trained_at or datetime.now(UTC),
        "train_start": model.train_start,
        "train_end": model.train_end,
        "params": json.dumps(
            {
                **model.params,
                **model.extra,
                "feature_columns": list(model.feature_columns),
                "code_version": CODE_VERSION,
                "n_train_rows": model.n_train_rows,
            },
            sort_keys=True,
        ),  # fmt: skip
        "metrics": json.dumps(metrics or {}, sort_keys=True, default=str),
        "artifact_path": None if artifact_path is None else str(artifact_path),
    }


def feature_importance(model: ForecastModel) -> pl.DataFrame:
    """CatBoost PredictionValuesChange importance, shape (n_features, 2), largest first."""
    values = model.booster.get_feature_importance()
    return pl.DataFrame(
        {"feature": list(model.feature_columns), "importance": np.asarray(values, dtype=float)}
    ).sort("importance", descending=True)


def plot_interval(
    backtest: pl.DataFrame, symbol: str = "BTCUSDT", horizon_days: int | None = None
) -> bytes:
    """PNG of the q10..q90 band, q50 and the realized log return for one symbol and horizon."""
    from portfolio_pipeline.common.plots import figure_png, pyplot

    plt = pyplot()

    if horizon_days is None:
        horizon_days = int(backtest["horizon_days"].max())
    rows = backtest.filter(
        (pl.col("symbol") == symbol) & (pl.col("horizon_days") == horizon_days)
    ).sort("as_of")
    if rows.height == 0:
        raise ForecastInputError(f"no backtest rows for {symbol} at horizon {horizon_days}")
    dates = rows["as_of"].to_list()
    fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
    ax.fill_between(dates, rows["q10"], rows["q90"], alpha=0.3, label="q10..q90")
    ax.plot(dates, rows["q50"], lw=0.8, label="q50")
    ax.plot(dates, rows["realized"], lw=0.5, color="black", alpha=0.7, label="realized")
    covered = ((rows["realized"] >= rows["q10"]) & (rows["realized"] <= rows["q90"])).mean()
    ax.set_title(f"{symbol} {horizon_days}-bar log return, out of sample (coverage {covered:.0%})")
    ax.legend(loc="upper left")
    return figure_png(fig, dpi=100)
