"""Does news sentiment help the DRL policy? PPO with, without and with shuffled sentiment.

The pipeline's DRL windows (validation 2023, test 2024-2025) hold no news, so this
benchmark moves the windows into the news period instead: train 2020-01-01 .. 2022-02-28
(news from 2021-10-12 on: its last 4.5 months), test 2022-03-01 .. 2022-07-04 (news
throughout; the LUNA and Celsius crashes). Fixed settings, nothing tuned: PPO, 16,384
timesteps, lookback 10, the pipeline's sentiment columns (``sentiment_ewm``, ``news_count``,
``market_sentiment_ewm``) scored by the offline fallback; five seeds per variant. The
placebo shuffles the sentiment values across coins and days of the news period (see
``benchmarks.sentiment_value``). Figures: test Sharpe (net of 10 bps costs) and total return
per variant (mean and per seed), the mean paired difference to "without", and equal
weight and buy-and-hold of the benchmark (``buy_benchmark``) through the same environment for
scale.
"""

from __future__ import annotations

import sys
from datetime import date

import numpy as np
import polars as pl

from benchmarks._common import emit
from benchmarks.sentiment_value import OHLCV_PATH, _daily_sentiment, _shuffled

NAME = "sentiment_value_drl"
TRAIN = (date(2020, 1, 1), date(2022, 3, 1))
TEST = (date(2022, 3, 1), date(2022, 7, 5))
SEEDS = (0, 1, 2, 3, 4)
TIMESTEPS = 16_384
PARAMS = {"n_steps": 256, "batch_size": 64}
ENV_KWARGS = {"lookback": 10}
SENTIMENT_COLUMNS = ("sentiment_ewm", "news_count", "market_sentiment_ewm")


def main(argv: list[str] | None = None) -> None:
    from portfolio_pipeline.market.features import compute_market_features
    from portfolio_pipeline.policies import drl
    from portfolio_pipeline.policies.env_data import build_env_data
    from portfolio_pipeline.policies.evaluation import (
        FIXED_WEIGHT_REFERENCES,
        evaluate_fixed_weights,
        evaluate_policy_window,
    )

    args = argv if argv is not None else sys.argv[1:]
    timesteps = int(args[args.index("--timesteps") + 1]) if "--timesteps" in args else TIMESTEPS
    ohlcv = pl.read_parquet(OHLCV_PATH).filter(pl.col("date") < TEST[1])
    features = compute_market_features(ohlcv)
    sentiment, scorer_name = _daily_sentiment(ohlcv)
    columns = ["symbol", "date", *SENTIMENT_COLUMNS]
    variants = {
        "without_sentiment": None,
        "with_sentiment": sentiment.select(columns),
        "with_shuffled_sentiment": _shuffled(sentiment).select(columns),
    }
    sharpes: dict[str, list[float]] = {}
    for variant, frame in variants.items():
        data = build_env_data(ohlcv, features, sentiment=frame)
        if frame is None:
            for reference in FIXED_WEIGHT_REFERENCES:
                result = evaluate_fixed_weights(data, TEST, reference, env_kwargs=ENV_KWARGS)
                emit(NAME, f"{reference}_test_sharpe", round(float(result.sharpe), 3),
                     "ratio", total_return=round(float(result.total_return), 4))  # fmt: skip
        sharpes[variant], returns = [], []
        for seed in SEEDS:
            policy = drl.train_policy(
                "PPO", data, TRAIN, PARAMS, timesteps, seed=seed, device="cpu",
                env_kwargs=ENV_KWARGS,
            )  # fmt: skip
            result = evaluate_policy_window(policy, data, TEST)
            sharpes[variant].append(float(result.sharpe))
            returns.append(float(result.total_return))
        emit(NAME, f"{variant}_test_sharpe_mean", round(float(np.mean(sharpes[variant])), 3),
             "ratio", per_seed=[round(v, 3) for v in sharpes[variant]], seeds=list(SEEDS),
             timesteps=timesteps, train=[str(d) for d in TRAIN], test=[str(d) for d in TEST],
             scorer=scorer_name)  # fmt: skip
        emit(NAME, f"{variant}_test_total_return_mean", round(float(np.mean(returns)), 4),
             "fraction", per_seed=[round(v, 4) for v in returns])  # fmt: skip
    for variant in ("with_sentiment", "with_shuffled_sentiment"):
        diff = np.array(sharpes[variant]) - np.array(sharpes["without_sentiment"])
        emit(NAME, f"{variant}_minus_without_test_sharpe", round(float(diff.mean()), 3),
             "ratio", per_seed=[round(float(v), 3) for v in diff],
             seeds_better=int((diff > 0).sum()))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
