"""Does news sentiment help the forecasts? Walk-forward with and without it, where news exists.

The sample's news covers 2021-10-12 .. 2022-07-05 only. Both variants run the same purged,
expanding-window walk-forward (default ``ForecastConfig``, refit every ``RETRAIN_DAYS``) with
out-of-sample as_of dates inside the news window; the only difference is the
``daily_sentiment`` join (scored by the offline fallback scorer on "title. summary", as the
pipeline does). Figures per horizon and variant: rank IC (mean daily cross-sectional
Spearman of q50 vs realized), its IR, q10-q90 coverage, directional accuracy, MAPE
improvement over the naive price; then the paired difference of the daily rank IC
(with - without) with a 95% moving-block bootstrap interval (blocks of ``BLOCK_DAYS``, since
H-day labels overlap), and the number of training rows that carried news at each refit.
A placebo variant joins the same sentiment values shuffled across (symbol, date) rows of
the news period (seeded): if it "helps" as much, the gain is noise from a different feature set, not
information in the news. Nothing here is tuned on these windows.

The DRL policy is not re-run here: its validation (2023) and test (2024-2025) windows hold no
news at all, so its sentiment channels are constant zeros where it is judged.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks._common import emit

NAME = "sentiment_value"
REPO_ROOT = Path(__file__).resolve().parents[1]
OHLCV_PATH = REPO_ROOT / "data" / "crypto_ohlcv_daily.parquet"
NEWS_PATH = REPO_ROOT / "data" / "crypto_news.parquet"
NEWS_START = date(2021, 10, 12)
NEWS_END = date(2022, 7, 5)
RETRAIN_DAYS = 30
BLOCK_DAYS = 10
BOOTSTRAP_SAMPLES = 2000
REPORTED = ("rank_ic", "rank_ic_ir", "coverage_q10_q90", "directional_accuracy",
            "mape_improvement_pct", "pinball_loss")  # fmt: skip


def _daily_sentiment(ohlcv: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    from portfolio_pipeline.news.articles import MARKET_SYMBOL, score_news
    from portfolio_pipeline.news.daily import daily_sentiment
    from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer

    news = (
        pl.read_parquet(NEWS_PATH).with_row_index("id").with_columns(pl.col("id").cast(pl.String))
    )
    scorer = LexiconSentimentScorer()
    scores = score_news(news, scorer)
    symbols = ohlcv["symbol"].unique().sort().to_list()
    frame = daily_sentiment(scores, symbols, ohlcv["date"].min(), ohlcv["date"].max())
    return frame.filter(pl.col("symbol") != MARKET_SYMBOL), scorer.name


def _shuffled(sentiment: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """The placebo: every sentiment value of the news period permuted across (symbol, date).

    Rows from the first news day to 60 days after the last (where the decayed series still
    carries news) swap their numeric columns jointly, so the placebo keeps the distribution
    and the share of days with news but loses which coin and day they belong to.
    """
    window = pl.col("date").is_between(NEWS_START, NEWS_END + timedelta(days=60))
    inside, outside = sentiment.filter(window), sentiment.filter(~window)
    values = [c for c in sentiment.columns if c not in ("symbol", "date")]
    permuted = inside.select(values).sample(fraction=1.0, shuffle=True, seed=seed)
    placebo = pl.concat([inside.select("symbol", "date"), permuted], how="horizontal")
    return pl.concat([placebo, outside.select(placebo.columns)]).sort("symbol", "date")


def _block_bootstrap(values: np.ndarray, block: int, samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = len(values)
    starts_needed = int(np.ceil(n / block))
    means = np.empty(samples)
    for i in range(samples):
        starts = rng.integers(0, n - block + 1, starts_needed)
        idx = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n]
        means[i] = values[idx].mean()
    return np.percentile(means, [2.5, 97.5])


def main() -> None:
    from portfolio_pipeline.forecasting.config import DEFAULT_HORIZONS, ForecastConfig
    from portfolio_pipeline.forecasting.evaluation import daily_rank_ic, evaluate_forecasts
    from portfolio_pipeline.forecasting.walkforward import walk_forward
    from portfolio_pipeline.market.features import compute_market_features

    ohlcv = pl.read_parquet(OHLCV_PATH)
    features = compute_market_features(ohlcv)
    sentiment, scorer_name = _daily_sentiment(ohlcv)
    news_days = sentiment.filter(pl.col("news_count") > 0)
    for horizon in DEFAULT_HORIZONS:
        backtests = {}
        variants = (
            ("without_sentiment", None),
            ("with_sentiment", sentiment),
            ("with_shuffled_sentiment", _shuffled(sentiment)),
        )
        for variant, frame in variants:
            backtest, folds = walk_forward(
                features, ohlcv, horizon, sentiment=frame, first_test_start=NEWS_START,
                retrain_every_days=RETRAIN_DAYS, last_test_date=NEWS_END,
            )  # fmt: skip
            backtests[variant] = backtest
            overall = (
                evaluate_forecasts(backtest, ohlcv)
                .filter(pl.col("symbol") == "ALL")
                .row(0, named=True)
            )
            for metric in REPORTED:
                emit(NAME, f"h{horizon}_{variant}_{metric}", round(float(overall[metric]), 4),
                     "value", horizon_days=horizon, variant=variant, n=overall["n"],
                     eval_start=str(overall["eval_start"]), eval_end=str(overall["eval_end"]),
                     folds=folds.height, scorer=scorer_name)  # fmt: skip
            if variant == "with_sentiment":
                # Symbol-days with news that each refit's CatBoost fit could learn from: as_of
                # up to train_end minus the conformal calibration days, which are held out
                # of the fit (ForecastConfig.calibration_days).
                calibration = ForecastConfig().calibration_days
                in_fit = [
                    news_days.filter(
                        pl.col("date") <= row["train_end"] - timedelta(days=calibration)
                    ).height
                    for row in folds.iter_rows(named=True)
                ]
                emit(NAME, f"h{horizon}_symbol_days_with_news_in_fit", in_fit, "rows per fold",
                     train_end=[str(d) for d in folds["train_end"]],
                     calibration_days=calibration)  # fmt: skip
        ic = {k: daily_rank_ic(v).select("as_of", "rank_ic") for k, v in backtests.items()}
        for variant in ("with_sentiment", "with_shuffled_sentiment"):
            paired = ic[variant].join(ic["without_sentiment"], on="as_of", suffix="_without")
            diff = (paired["rank_ic"] - paired["rank_ic_without"]).to_numpy()
            low, high = _block_bootstrap(diff, BLOCK_DAYS, BOOTSTRAP_SAMPLES)
            emit(NAME, f"h{horizon}_{variant}_minus_without_rank_ic",
                 round(float(diff.mean()), 4), "spearman",
                 ci95=[round(float(low), 4), round(float(high), 4)], days=len(diff),
                 block_days=BLOCK_DAYS)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
