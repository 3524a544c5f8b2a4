"""Out-of-sample evaluation of the forecasts: pinball loss, coverage, rank IC, volatility
errors, and the interval plot.

Pure (no dagster); matplotlib is imported inside :func:`plot_interval`.
"""

from __future__ import annotations

from datetime import date
from typing import cast

import polars as pl

from portfolio_pipeline.forecasting.config import (
    QUANTILES,
    ForecastInputError,
)


def _pinball(realized: pl.Expr, forecast: pl.Expr, q: float) -> pl.Expr:
    error = realized - forecast
    return pl.max_horizontal(q * error, (q - 1.0) * error)


def _metrics(group: pl.Expr | None = None) -> list[pl.Expr]:
    realized, q50 = pl.col("realized"), pl.col("q50")
    nonzero = realized != 0
    # sum() starts from the int 0, so its declared type is Expr | int; the value is an Expr.
    pinball = cast(
        pl.Expr,
        sum(
            _pinball(realized, pl.col(name), q)
            for name, q in zip(("q10", "q50", "q90"), QUANTILES, strict=True)
        )
        / len(QUANTILES),
    )
    return [
        (
            100.0
            * ((pl.col("_price_model") - pl.col("_price_actual")).abs() / pl.col("_price_actual"))
        )
        .mean()
        .alias("mape_model"),
        (100.0 * ((pl.col("_close") - pl.col("_price_actual")).abs() / pl.col("_price_actual")))
        .mean()
        .alias("mape_naive"),
        (q50.sign() == realized.sign()).filter(nonzero).mean().alias("directional_accuracy"),
        ((realized >= pl.col("q10")) & (realized <= pl.col("q90")))
        .mean()
        .alias("coverage_q10_q90"),
        pinball.mean().alias("pinball_loss"),
        pl.corr(q50, realized, method="spearman").alias("ts_rank_corr"),
        pl.col("as_of").min().alias("eval_start"),
        pl.col("as_of").max().alias("eval_end"),
        pl.len().alias("n"),
    ]


def daily_rank_ic(backtest: pl.DataFrame, min_symbols: int = 3) -> pl.DataFrame:
    """Spearman correlation across symbols of q50 vs realized, per (horizon_days, as_of).

    Dates with fewer than ``min_symbols`` symbols, or a constant q50 or realized, are dropped.
    """
    return (
        backtest.group_by("horizon_days", "as_of")
        .agg(
            pl.corr("q50", "realized", method="spearman").alias("rank_ic"),
            pl.len().alias("n_symbols"),
        )
        .filter((pl.col("n_symbols") >= min_symbols) & pl.col("rank_ic").is_not_nan())
        .sort("horizon_days", "as_of")
    )


def evaluate_forecasts(
    backtest: pl.DataFrame,
    ohlcv: pl.DataFrame,
    *,
    evaluation_start: date | None = None,
    evaluation_end: date | None = None,
) -> pl.DataFrame:
    """Accuracy of out-of-sample forecasts, per symbol and 'ALL', per horizon.

    Prices: model = close[d] * exp(q50), naive = close[d] (random walk), actual = close[d+H]
    from ``ohlcv``. MAPEs are in percent; ``mape_improvement_pct`` = 100 * (naive - model) /
    naive. ``directional_accuracy``: share of rows with sign(q50) == sign(realized), rows with
    realized == 0 excluded. ``rank_ic``: mean over dates of the cross-sectional Spearman
    correlation of q50 and realized (ALL rows only; a single symbol has no cross-section),
    ``rank_ic_ir`` = mean / std of the daily values (overlapping H-day windows make it look
    better than independent samples would). ``ts_rank_corr``: Spearman of q50 vs realized over
    the rows of the group. ``coverage_q10_q90``: share of realized within [q10, q90] (nominal
    0.8). ``pinball_loss``: mean over rows and the three quantiles.

    Returns
    -------
    polars.DataFrame
        Target ``ml.forecast_evaluation``: symbol, horizon_days, mape_model, mape_naive,
        mape_improvement_pct, directional_accuracy, rank_ic, rank_ic_ir, ts_rank_corr,
        coverage_q10_q90, pinball_loss, eval_start, eval_end, n. 'ALL' first per horizon.
    """
    rows = _labelled_in_window(backtest, evaluation_start, evaluation_end)
    rows = _with_prices(rows, ohlcv)
    per_symbol = rows.group_by("horizon_days", "symbol").agg(_metrics())
    overall = _overall_with_rank_ic(rows)
    per_symbol = per_symbol.with_columns(
        pl.lit(None, dtype=pl.Float64).alias("rank_ic"),
        pl.lit(None, dtype=pl.Float64).alias("rank_ic_ir"),
    )
    columns = [
        "symbol", "horizon_days", "mape_model", "mape_naive", "mape_improvement_pct",
        "directional_accuracy", "rank_ic", "rank_ic_ir", "ts_rank_corr", "coverage_q10_q90",
        "pinball_loss", "eval_start", "eval_end", "n",
    ]  # fmt: skip
    return (
        pl.concat([overall.select(per_symbol.columns), per_symbol])
        .with_columns(
            (100.0 * (pl.col("mape_naive") - pl.col("mape_model")) / pl.col("mape_naive")).alias(
                "mape_improvement_pct"
            ),
            pl.col("n").cast(pl.Int64),
        )
        .with_columns((pl.col("symbol") != "ALL").alias("_not_all"))
        .sort("horizon_days", "_not_all", "symbol")
        .select(columns)
    )


def _overall_with_rank_ic(rows: pl.DataFrame) -> pl.DataFrame:
    """The 'ALL' row of each horizon: the pooled metrics and the daily cross-sectional rank IC
    (its mean and information ratio)."""
    overall = (
        rows.group_by("horizon_days").agg(_metrics()).with_columns(pl.lit("ALL").alias("symbol"))
    )
    ic = (
        daily_rank_ic(rows)
        .group_by("horizon_days")
        .agg(
            pl.col("rank_ic").mean().alias("rank_ic"),
            (pl.col("rank_ic").mean() / pl.col("rank_ic").std()).alias("rank_ic_ir"),
        )
    )
    overall = overall.join(ic, on="horizon_days", how="left")
    return overall


def _labelled_in_window(
    backtest: pl.DataFrame, evaluation_start: date | None, evaluation_end: date | None
) -> pl.DataFrame:
    """The backtest rows issued in the window whose outcome is known; at least one."""
    rows = backtest
    if evaluation_start is not None:
        rows = rows.filter(pl.col("as_of") >= evaluation_start)
    if evaluation_end is not None:
        rows = rows.filter(pl.col("as_of") <= evaluation_end)
    rows = rows.filter(pl.col("realized").is_not_null())
    if rows.height == 0:
        raise ForecastInputError(
            f"evaluate_forecasts: no labelled backtest rows in {evaluation_start}..{evaluation_end}"
        )
    return rows


def _with_prices(rows: pl.DataFrame, ohlcv: pl.DataFrame) -> pl.DataFrame:
    """Adds the close at as_of, the actual close H bars later and the model's price."""
    closes = ohlcv.select(
        pl.col("symbol").cast(pl.String), "date", pl.col("close").cast(pl.Float64)
    ).sort("symbol", "date")
    # The realized price is the close H BARS after as_of (the symbol's own calendar).
    ahead = pl.concat(
        [
            closes.select(
                "symbol",
                pl.col("date").alias("as_of"),
                pl.lit(h, dtype=rows.schema["horizon_days"]).alias("horizon_days"),
                pl.col("close").alias("_close"),
                pl.col("close").shift(-h).over("symbol").alias("_price_actual"),
            )
            for h in sorted(rows["horizon_days"].unique().to_list())
        ]
    )
    rows = rows.join(ahead, on=["symbol", "as_of", "horizon_days"], how="left")
    unpriced = rows.filter(pl.col("_close").is_null() | pl.col("_price_actual").is_null())
    if unpriced.height:
        raise ForecastInputError(
            "evaluate_forecasts: backtest rows without a close at as_of or as_of + H: "
            + ", ".join(
                f"{r['symbol']} {r['as_of']}" for r in unpriced.head(5).iter_rows(named=True)
            )
        )
    return rows.with_columns((pl.col("_close") * pl.col("q50").exp()).alias("_price_model"))


def evaluate_volatility_forecasts(backtest: pl.DataFrame) -> pl.DataFrame:
    """Volatility accuracy per symbol and 'ALL', per horizon, against the trailing-vol naive.

    Returns
    -------
    polars.DataFrame
        symbol, horizon_days, rmse_model, rmse_naive, rmse_improvement_pct, mae_model,
        mae_naive, n (errors in annualised volatility units).
    """
    metrics = [
        ((pl.col("vol_forecast") - pl.col("realized_vol")) ** 2).mean().sqrt().alias("rmse_model"),
        ((pl.col("trailing_vol") - pl.col("realized_vol")) ** 2).mean().sqrt().alias("rmse_naive"),
        (pl.col("vol_forecast") - pl.col("realized_vol")).abs().mean().alias("mae_model"),
        (pl.col("trailing_vol") - pl.col("realized_vol")).abs().mean().alias("mae_naive"),
        pl.len().cast(pl.Int64).alias("n"),
    ]
    rows = backtest.filter(pl.col("realized_vol").is_not_null())
    overall = rows.group_by("horizon_days").agg(metrics).with_columns(pl.lit("ALL").alias("symbol"))
    per_symbol = rows.group_by("horizon_days", "symbol").agg(metrics)
    return (
        pl.concat([overall.select(per_symbol.columns), per_symbol])
        .with_columns(
            (100.0 * (pl.col("rmse_naive") - pl.col("rmse_model")) / pl.col("rmse_naive")).alias(
                "rmse_improvement_pct"
            ),
            (pl.col("symbol") != "ALL").alias("_not_all"),
        )
        .sort("horizon_days", "_not_all", "symbol")
        .select(
            "symbol",
            "horizon_days",
            "rmse_model",
            "rmse_naive",
            "rmse_improvement_pct",
            "mae_model",
            "mae_naive",
            "n",
        )  # fmt: skip
    )


def plot_interval(
    backtest: pl.DataFrame, symbol: str = "BTCUSDT", horizon_days: int | None = None
) -> bytes:
    """PNG of the q10..q90 band, q50 and the realized log return for one symbol and horizon."""
    from portfolio_pipeline.common.plots import figure_png, pyplot

    plt = pyplot()

    if horizon_days is None:
        horizon_days = int(cast(int, backtest["horizon_days"].max()))
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
    covered = cast(
        float, ((rows["realized"] >= rows["q10"]) & (rows["realized"] <= rows["q90"])).mean()
    )  # the mean of a Boolean series is a float (polars types mean() loosely)
    ax.set_title(f"{symbol} {horizon_days}-bar log return, out of sample (coverage {covered:.0%})")
    ax.legend(loc="upper left")
    return figure_png(fig, dpi=100)
