"""Forecast configuration and names: model kinds, quantiles, target columns, ``ForecastConfig``.

Pure (no dagster). ``CODE_VERSION`` versions every trained model (with the data and the
parameters of :class:`ForecastConfig`); the rest of the forecasting stage imports its names
from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _symbol_encoding_params(encoding: str, one_hot_max_size: int) -> dict[str, Any]:
    """CatBoost parameters for the symbol column under ``encoding``."""
    if encoding == "target_stats":
        # one_hot_max_size=1: every categorical goes through ordered target statistics.
        return {"one_hot_max_size": 1}
    return {"one_hot_max_size": one_hot_max_size}
