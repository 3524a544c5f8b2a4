"""Market features from daily OHLCV: returns, volatility, technical indicators, ranks.

Pure (no dagster). One vectorised polars query over the whole ragged panel: every
time-series feature is computed per symbol with ``.over("symbol")`` on rows sorted by date,
so a row for date ``d`` only ever sees that symbol's rows dated ``<= d``. Cross-sectional
ranks only compare symbols on the same date. Warm-up rows (too little history for a
window) are null, never back-filled.

Windows count ROWS (trading periods), not calendar days: with a crypto panel (365 periods a
year, no gaps) the two agree; for equities a 20-row window is 20 trading days.

Columns of :func:`compute_market_features` (table ``features.market_features``) and their
definitions (t = row of a symbol):

- ``close``: the input close.
- ``ret_1d`` = close_t / close_{t-1} - 1; ``log_ret_1d`` = ln(close_t / close_{t-1}).
- ``ret_{h}d`` for h in 5, 20, 60, 120 = close_t / close_{t-h} - 1 (momentum).
- ``vol_20d``, ``vol_60d``: sample std (ddof=1) of ``log_ret_1d`` over the last 20/60
  rows x sqrt(periods_per_year).
- ``rsi_14``: Wilder RSI; gains/losses = positive/negative close changes, averaged
  with Wilder smoothing (alpha = 1/14) seeded by the simple mean of the first 14
  changes; RSI = 100 * avg_gain / (avg_gain + avg_loss) (= 100 - 100/(1+RS)); 50 when
  the price did not move at all. First value at row 14.
- ``macd`` = EMA12(close) - EMA26(close), EMAs with adjust=False (recursive, started at
  the first close), null for the first 25 rows; ``macd_signal`` = EMA9(macd), null for
  the first 33 rows; ``macd_hist`` = macd - macd_signal. ``macd_pct`` = macd / close
  (comparable across symbols).
- ``bb_pct_b_20`` = (close - lower) / (upper - lower), bands = SMA20 +- 2 x population
  std (ddof=0) of close over 20 rows; null if the bands collapse. ``bb_width_20`` =
  (upper - lower) / SMA20.
- ``atr_14``: Wilder average (alpha = 1/14, seeded by the mean of the first 14) of the
  true range max(high - low, |high - close_{t-1}|, |low - close_{t-1}|); first value
  at row 14. ``atr_pct_14`` = atr_14 / close.
- ``volume_z_20`` = (volume_t - mean) / std (ddof=1) of volume over the last 20 rows,
  today included; null when the std is 0.
- ``drawdown_60d`` = close_t / max(close over the last 60 rows) - 1, in [-1, 0].
- ``log_dollar_volume_20d`` = ln(1 + mean(close x volume) over 20 rows) (liquidity).
- ``range_pct_1d`` = (high - low) / close.
- ``history_days``: rows of history of the symbol up to and including t (1 on its
  first row); lets consumers drop freshly listed symbols.
- Calendar (known in advance): ``day_of_week`` (1 = Monday .. 7), ``day_of_month``,
  ``month``, ``is_month_end``, ``is_weekend``.
- Cross-sectional, among the symbols with a non-null value ON THE SAME DATE:
  ``{f}_xs_rank`` for f in ret_5d, ret_20d, ret_60d, vol_20d, volume_z_20, rsi_14,
  log_dollar_volume_20d = (average rank - 1) / (n - 1) in [0, 1] (0.5 when n = 1);
  ``xs_n_symbols`` = symbols with a close that date.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

REQUIRED_OHLCV_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "open",
    "high",
    "low",
    "close",
    "volume",
)

RSI_PERIOD = 14
ATR_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BOLLINGER_WINDOW, BOLLINGER_STDS = 20, 2.0
VOLUME_Z_WINDOW = 20
DRAWDOWN_WINDOW = 60
RETURN_HORIZONS: tuple[int, ...] = (5, 20, 60, 120)
VOLATILITY_WINDOWS: tuple[int, ...] = (20, 60)

# Features ranked across symbols on each date (0 = lowest, 1 = highest).
CROSS_SECTIONAL_RANKED: tuple[str, ...] = (
    "ret_5d",
    "ret_20d",
    "ret_60d",
    "vol_20d",
    "volume_z_20",
    "rsi_14",
    "log_dollar_volume_20d",
)

# The columns of features.market_features, in table order.
MARKET_FEATURES_TABLE_COLUMNS: tuple[str, ...] = (
    "symbol", "date", "close",
    "ret_1d", "log_ret_1d", *[f"ret_{h}d" for h in RETURN_HORIZONS],
    *[f"vol_{w}d" for w in VOLATILITY_WINDOWS],
    "rsi_14", "macd", "macd_signal", "macd_hist", "macd_pct",
    "bb_pct_b_20", "bb_width_20", "atr_14", "atr_pct_14", "volume_z_20",
    "drawdown_60d", "log_dollar_volume_20d", "range_pct_1d", "history_days",
    "day_of_week", "day_of_month", "month", "is_month_end", "is_weekend",
    "xs_n_symbols", *[f"{name}_xs_rank" for name in CROSS_SECTIONAL_RANKED],
)  # fmt: skip


class FeatureInputError(ValueError):
    """The OHLCV input breaks a rule; the message names the rule, symbols and dates."""


def _describe_violations(rows: pl.DataFrame, limit: int = 5) -> str:
    shown = [f"{r['symbol']} {r['date']}" for r in rows.head(limit).iter_rows(named=True)]
    more = f" (+{rows.height - limit} more)" if rows.height > limit else ""
    return ", ".join(shown) + more


def validate_ohlcv(ohlcv: pl.DataFrame) -> None:
    """Raise :class:`FeatureInputError` when the raw OHLCV frame cannot be featurised.

    Rules: the required columns exist; ``date`` is a ``Date``; (symbol, date) is unique;
    prices and volume are non-null; prices are > 0; ``high >= low``; ``volume >= 0``.
    """
    missing = [c for c in REQUIRED_OHLCV_COLUMNS if c not in ohlcv.columns]
    if missing:
        raise FeatureInputError(f"OHLCV frame lacks required columns {missing}")
    if ohlcv.schema["date"] != pl.Date:
        raise FeatureInputError(
            f"OHLCV column 'date' must be polars Date (UTC day), got {ohlcv.schema['date']}"
        )
    duplicated = (
        ohlcv.group_by("symbol", "date").len().filter(pl.col("len") > 1).sort("symbol", "date")
    )
    if duplicated.height:
        raise FeatureInputError(
            f"duplicate (symbol, date) rows: {_describe_violations(duplicated)}"
        )
    prices = ("open", "high", "low", "close")
    rules: list[tuple[str, pl.Expr]] = [
        (
            "null price, volume, symbol or date",
            pl.any_horizontal(pl.col(*prices, "volume", "symbol", "date").is_null()),
        ),
        ("non-positive price", pl.any_horizontal(pl.col(*prices) <= 0)),
        ("high below low", pl.col("high") < pl.col("low")),
        ("negative volume", pl.col("volume") < 0),
    ]
    for rule, broken in rules:
        bad = ohlcv.filter(broken.fill_null(False)).select("symbol", "date").sort("symbol", "date")
        if bad.height:
            raise FeatureInputError(f"OHLCV rule broken ({rule}): {_describe_violations(bad)}")


def _wilder_average(values: pl.Expr, row: pl.Expr, period: int, first_valid_row: int) -> pl.Expr:
    """Wilder's smoothed average, seeded with the simple mean of the first ``period`` values.

    ``avg_t = avg_{t-1} + (x_t - avg_{t-1}) / period``; the first average (at row
    ``first_valid_row + period - 1``) is the plain mean of the first ``period`` values, as in
    Wilder (1978) and TA-Lib. Rows before the seed are null. Must be evaluated ``.over``
    the symbol.
    """
    seed_row = first_valid_row + period - 1
    seeded = (
        pl.when(row == seed_row)
        .then(values.rolling_mean(period, min_samples=period))
        .when(row > seed_row)
        .then(values)
        .otherwise(None)
    )
    return seeded.ewm_mean(alpha=1.0 / period, adjust=False, min_samples=1)


def _per_symbol_expressions(periods_per_year: int) -> list[list[pl.Expr]]:
    """Stages of per-symbol expressions; each stage may use the columns of the previous."""
    row = pl.col("_row")
    close, high, low = pl.col("close"), pl.col("high"), pl.col("low")
    prev_close = close.shift(1)
    annualise = math.sqrt(periods_per_year)

    stage_1: list[pl.Expr] = [
        (close / prev_close - 1.0).alias("ret_1d"),
        (close / prev_close).log().alias("log_ret_1d"),
        *[(close / close.shift(h) - 1.0).alias(f"ret_{h}d") for h in RETURN_HORIZONS],
        (close - prev_close).clip(lower_bound=0.0).alias("_gain"),
        (prev_close - close).clip(lower_bound=0.0).alias("_loss"),
        pl.max_horizontal(high - low, (high - prev_close).abs(), (low - prev_close).abs())
        .fill_null(strategy="zero")  # placeholder for row 0; masked out by the Wilder seed
        .alias("_true_range"),
        close.ewm_mean(span=MACD_FAST, adjust=False).alias("_ema_fast"),
        close.ewm_mean(span=MACD_SLOW, adjust=False).alias("_ema_slow"),
        close.rolling_mean(BOLLINGER_WINDOW, min_samples=BOLLINGER_WINDOW).alias("_bb_mid"),
        close.rolling_std(BOLLINGER_WINDOW, min_samples=BOLLINGER_WINDOW, ddof=0).alias("_bb_std"),
        pl.col("volume")
        .rolling_mean(VOLUME_Z_WINDOW, min_samples=VOLUME_Z_WINDOW)
        .alias("_vol_mean"),
        pl.col("volume")
        .rolling_std(VOLUME_Z_WINDOW, min_samples=VOLUME_Z_WINDOW)
        .alias("_vol_std"),
        (close / close.rolling_max(DRAWDOWN_WINDOW, min_samples=DRAWDOWN_WINDOW) - 1.0).alias(
            f"drawdown_{DRAWDOWN_WINDOW}d"
        ),
        (close * pl.col("volume"))
        .rolling_mean(20, min_samples=20)
        .log1p()
        .alias("log_dollar_volume_20d"),
        ((high - low) / close).alias("range_pct_1d"),
    ]
    stage_2: list[pl.Expr] = [
        *[
            (pl.col("log_ret_1d").rolling_std(w, min_samples=w) * annualise).alias(f"vol_{w}d")
            for w in VOLATILITY_WINDOWS
        ],
        _wilder_average(pl.col("_gain"), row, RSI_PERIOD, first_valid_row=1).alias("_avg_gain"),
        _wilder_average(pl.col("_loss"), row, RSI_PERIOD, first_valid_row=1).alias("_avg_loss"),
        _wilder_average(pl.col("_true_range"), row, ATR_PERIOD, first_valid_row=1).alias(
            f"atr_{ATR_PERIOD}"
        ),
        (pl.col("_ema_fast") - pl.col("_ema_slow")).alias("_macd_raw"),
    ]
    # The signal EMA runs over the whole MACD line (as pandas/TA references do); only the
    # published values are masked until both EMAs have had time to warm up.
    stage_3: list[pl.Expr] = [
        pl.when(row >= MACD_SLOW - 1).then(pl.col("_macd_raw")).alias("macd"),
        pl.when(row >= MACD_SLOW + MACD_SIGNAL - 2)
        .then(pl.col("_macd_raw").ewm_mean(span=MACD_SIGNAL, adjust=False, min_samples=1))
        .alias("macd_signal"),
    ]
    return [stage_1, stage_2, stage_3]


def compute_market_features(ohlcv: pl.DataFrame, periods_per_year: int = 365) -> pl.DataFrame:
    """Daily market features, one row per (symbol, date) of the input.

    Parameters
    ----------
    ohlcv : polars.DataFrame
        Raw OHLCV, ragged panel, shape (n_rows, >= 7): symbol, date (Date), open, high, low,
        close, volume (other columns are ignored). Validated by :func:`validate_ohlcv`.
    periods_per_year : int
        Annualisation factor of volatility: 365 for crypto, 252 for equities.

    Returns
    -------
    polars.DataFrame
        Shape (n_rows, ~40), sorted by (symbol, date); target table
        ``features.market_features``; its columns and their definitions are in the module
        docstring. Warm-up rows are null. Nothing in a row dated d depends on rows dated
        after d.

    Raises
    ------
    FeatureInputError
        When the input breaks a rule of :func:`validate_ohlcv`.
    ValueError
        When ``periods_per_year`` is not positive.
    """
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    validate_ohlcv(ohlcv)

    frame = (
        ohlcv.lazy()
        .select(
            pl.col("symbol").cast(pl.String),
            "date",
            *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")],
        )
        .sort("symbol", "date")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("symbol").alias("_row"))
    )
    for stage in _per_symbol_expressions(periods_per_year):
        frame = frame.with_columns([expr.over("symbol") for expr in stage])

    frame = frame.with_columns(_combined_expressions()).with_columns(
        pl.len().over("date").cast(pl.Int32).alias("xs_n_symbols"),
        *[_cross_sectional_rank(name) for name in CROSS_SECTIONAL_RANKED],
    )
    return frame.select(MARKET_FEATURES_TABLE_COLUMNS).collect()


def _combined_expressions() -> list[pl.Expr]:
    """Features combining the per-symbol stages' columns, and the calendar (row-wise only)."""
    band_width = 2.0 * BOLLINGER_STDS * pl.col("_bb_std")
    gain_plus_loss = pl.col("_avg_gain") + pl.col("_avg_loss")
    return [
        (pl.col("macd") - pl.col("macd_signal")).alias("macd_hist"),
        (pl.col("macd") / pl.col("close")).alias("macd_pct"),
        pl.when(gain_plus_loss > 0)
        .then(100.0 * pl.col("_avg_gain") / gain_plus_loss)
        .when(gain_plus_loss == 0)
        .then(50.0)
        .alias(f"rsi_{RSI_PERIOD}"),
        pl.when(band_width > 0)
        .then((pl.col("close") - (pl.col("_bb_mid") - band_width / 2.0)) / band_width)
        .alias(f"bb_pct_b_{BOLLINGER_WINDOW}"),
        (band_width / pl.col("_bb_mid")).alias(f"bb_width_{BOLLINGER_WINDOW}"),
        (pl.col(f"atr_{ATR_PERIOD}") / pl.col("close")).alias(f"atr_pct_{ATR_PERIOD}"),
        pl.when(pl.col("_vol_std") > 0)
        .then((pl.col("volume") - pl.col("_vol_mean")) / pl.col("_vol_std"))
        .alias(f"volume_z_{VOLUME_Z_WINDOW}"),
        (pl.col("_row") + 1).alias("history_days"),
        pl.col("date").dt.weekday().cast(pl.Int8).alias("day_of_week"),
        pl.col("date").dt.day().cast(pl.Int8).alias("day_of_month"),
        pl.col("date").dt.month().cast(pl.Int8).alias("month"),
        (pl.col("date") == pl.col("date").dt.month_end()).alias("is_month_end"),
        (pl.col("date").dt.weekday() >= 6).alias("is_weekend"),
    ]


def _cross_sectional_rank(column: str) -> pl.Expr:
    """Rank of ``column`` among same-date non-null values, scaled to [0, 1]."""
    value = pl.col(column)
    available = value.count().over("date")
    rank = value.rank(method="average").over("date")
    return (
        pl.when(value.is_null())
        .then(None)
        .when(available > 1)
        .then((rank - 1.0) / (available - 1.0))
        .otherwise(0.5)
        .alias(f"{column}_xs_rank")
    )


@dataclass(frozen=True)
class ReturnsCovariance:
    """Covariance of daily log returns over a trailing window.

    Attributes
    ----------
    symbols : list[str]
        Row/column order of ``matrix`` (N symbols).
    matrix : numpy.ndarray
        Shape (N, N), sample covariance (ddof=1) of daily log returns; annualised when
        ``periods_per_year`` was given.
    start, end : datetime.date
        First and last date of the window (``end <= as_of``).
    n_observations : int
        Dates in the window (rows used per symbol).
    """

    symbols: list[str]
    matrix: np.ndarray
    start: date
    end: date
    n_observations: int


def returns_covariance(
    frame: pl.DataFrame,
    window: int,
    as_of: date,
    symbols: Sequence[str] | None = None,
    periods_per_year: int | None = None,
) -> ReturnsCovariance:
    """Covariance matrix of daily log returns over the ``window`` dates ending at ``as_of``.

    Parameters
    ----------
    frame : polars.DataFrame
        Either market features (symbol, date, log_ret_1d) or raw OHLCV (symbol, date, close).
    window : int
        Number of panel dates (the last ``window`` distinct dates ``<= as_of``), >= 2.
    as_of : datetime.date
        Last date used; nothing later is read.
    symbols : sequence of str, optional
        Symbols to include, in this order. Each must have a log return on every date of the
        window, otherwise :class:`FeatureInputError` names the symbol and missing dates.
        Default: every symbol with a complete window (listed early enough, still trading).
    periods_per_year : int, optional
        When given, the covariance is annualised (multiplied by it).

    Returns
    -------
    ReturnsCovariance
        ``matrix`` of shape (N, N) in the order of ``symbols``.
    """
    if window < 2:
        raise ValueError(f"window must be >= 2 dates, got {window}")
    returns = _log_returns_up_to(frame, as_of)
    window_dates = returns.get_column("date").unique().sort().tail(window)
    if window_dates.len() < window:
        raise FeatureInputError(
            f"returns_covariance: only {window_dates.len()} dates up to {as_of}, window needs {window}"
        )
    in_window = returns.filter(pl.col("date").is_in(window_dates.implode()))
    wide = in_window.pivot(on="symbol", index="date", values="log_ret_1d").sort("date")
    wide = pl.DataFrame({"date": window_dates}).join(wide, on="date", how="left")
    chosen = _complete_symbols(wide, symbols, window)
    if not chosen:
        raise FeatureInputError(
            f"returns_covariance: no symbol has a complete window {window_dates[0]}..{window_dates[-1]}"
        )
    matrix = np.cov(wide.select(chosen).to_numpy(), rowvar=False, ddof=1).reshape(
        len(chosen), len(chosen)
    )
    if periods_per_year is not None:
        matrix = matrix * periods_per_year
    return ReturnsCovariance(
        symbols=chosen,
        matrix=matrix,
        start=window_dates[0],
        end=window_dates[-1],
        n_observations=window,
    )


def _log_returns_up_to(frame: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """(symbol, date, log_ret_1d) up to ``as_of``, from features or from raw closes."""
    if "log_ret_1d" in frame.columns:
        return frame.select("symbol", "date", "log_ret_1d").filter(pl.col("date") <= as_of)
    if "close" in frame.columns:
        return (
            frame.filter(pl.col("date") <= as_of)
            .sort("symbol", "date")
            .select(
                "symbol",
                "date",
                (pl.col("close") / pl.col("close").shift(1))
                .log()
                .over("symbol")
                .alias("log_ret_1d"),
            )
        )
    raise FeatureInputError("returns_covariance needs a 'log_ret_1d' or a 'close' column")


def _complete_symbols(wide: pl.DataFrame, symbols: Sequence[str] | None, window: int) -> list[str]:
    """The requested symbols (each must be complete over the window), or every complete one."""
    window_dates = wide.get_column("date")
    if symbols is None:
        return sorted(c for c in wide.columns if c != "date" and wide[c].null_count() == 0)
    chosen = list(symbols)
    for symbol in chosen:
        if symbol not in wide.columns:
            raise FeatureInputError(
                f"returns_covariance: {symbol} has no returns in {window_dates[0]}..{window_dates[-1]}"
            )
        missing = wide.filter(pl.col(symbol).is_null())["date"]
        if missing.len():
            raise FeatureInputError(
                f"returns_covariance: {symbol} lacks log returns on {missing.len()} of the "
                f"{window} window dates (first {missing[0]}, last {missing[-1]})"
            )
    return chosen
