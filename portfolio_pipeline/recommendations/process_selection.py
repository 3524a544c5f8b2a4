"""Which recommendation process to follow, chosen on validation by a rule written down before
the test window is looked at, and a rolling-origin record of that rule.

The rule (issue 22)
-------------------
On the choice window, every candidate process and parameter set (:func:`~.processes.
candidate_processes`) is ranked by its Sharpe ratio net of costs, rounded to two decimals (the
precision we report; a closer race is a tie). Ties go to the cheaper process: lower turnover.
A process that did not trade at all on the window (``never_trade``, or a rule that refused
every trade) is chosen only when its Sharpe is strictly above every process that traded:
doing nothing must win, not tie. ``target`` is a candidate, so when nothing beats it the
choice is ``target`` ("rebalance to target").

Rolling origin
--------------
One year of validation is noisy. For each calendar year ``Y`` whose previous year was
replayed, the rule picks on ``Y - 1`` alone and the next-year figures of every process are
recorded: an out-of-sample record of the decision procedure, year after year. The choice for
``Y`` uses nothing from ``Y``: its inputs are the ``Y - 1`` window's metrics.

For comparison only (it never drives the recommendations), each row also names what an
expanding-window rule would have picked for ``Y``: the best mean Sharpe over every replayed
year before ``Y`` (``expanding_process``, ``expanding_sharpe``). It was added after the
single-year rule's record was seen, so it is a reference, not a validated rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from portfolio_pipeline.recommendations.processes import ProcessSpec

SELECTION_METRIC = "sharpe"
SHARPE_DECIMALS = 2


@dataclass(frozen=True)
class ProcessChoice:
    """The chosen process, its figures on the choice window and why it won."""

    process: str
    sharpe: float
    turnover: float
    reason: str


def choose_process(metrics: pl.DataFrame, window: str) -> ProcessChoice:
    """Apply the rule of the module docstring to ``metrics``' rows of ``window``.

    ``metrics`` : one row per (process, window) with ``sharpe``, ``turnover``, ``trading_days``.
    """
    rows = metrics.filter(
        (pl.col("window") == window)
        & pl.col(SELECTION_METRIC).is_not_null()
        & pl.col(SELECTION_METRIC).is_not_nan()
    )
    if rows.is_empty():
        raise ValueError(f"process choice: no process has a defined {SELECTION_METRIC} on {window}")
    ranked = rows.with_columns(
        pl.col(SELECTION_METRIC).round(SHARPE_DECIMALS).alias("_score"),
        pl.col("turnover").fill_null(0.0).fill_nan(0.0).alias("_turnover"),
    ).sort(["_score", "_turnover", "process"], descending=[True, False, False])
    traded = ranked.filter(pl.col("trading_days") > 0)
    idle = ranked.filter(pl.col("trading_days") == 0)
    if traded.is_empty():
        plain = idle.filter(pl.col("process") == "never_trade")
        best = (plain if plain.height else idle).row(0, named=True)
        return _choice(best, f"no process traded on {window}: {best['process']}")
    best = traded.row(0, named=True)
    if idle.height and idle["_score"][0] > best["_score"]:
        # among idle processes that tie, name the plain one: never_trade
        tops = idle.filter(pl.col("_score") == idle["_score"][0])
        plain = tops.filter(pl.col("process") == "never_trade")
        winner = (plain if plain.height else tops).row(0, named=True)
        return _choice(winner, f"doing nothing won on {window} (Sharpe {winner['_score']:.2f})")
    tied = traded.filter(pl.col("_score") == best["_score"]).height
    why = f"best {window} Sharpe {best['_score']:.2f}" + (
        f" (tied with {tied - 1} other(s): the lowest turnover wins)" if tied > 1 else ""
    )
    return _choice(best, why)


def _choice(row: dict, reason: str) -> ProcessChoice:
    return ProcessChoice(row["process"], float(row[SELECTION_METRIC]), row["_turnover"], reason)


def _has_scores(metrics: pl.DataFrame, window: str) -> bool:
    scored = metrics.filter(
        (pl.col("window") == window)
        & pl.col(SELECTION_METRIC).is_not_null()
        & pl.col(SELECTION_METRIC).is_not_nan()
    )
    return not scored.is_empty()


def _expanding_choice(metrics: pl.DataFrame, year: int, following: pl.DataFrame) -> dict:
    """The process with the best mean Sharpe over every replayed year before ``year`` and its
    Sharpe in ``year`` (None when no earlier year has scores)."""
    past = metrics.filter(
        pl.col("window").str.contains(r"^\d{4}$")
        & (pl.col("process") != "recommended")
        & pl.col(SELECTION_METRIC).is_not_nan()
    ).filter(pl.col("window").cast(pl.Int64) < year)
    if past.is_empty():
        return {"expanding_process": None, "expanding_sharpe": None}
    means = past.group_by("process").agg(pl.col(SELECTION_METRIC).mean().alias("_mean"))
    best = means.sort(["_mean", "process"], descending=[True, False])["process"][0]
    sharpe = following.filter(pl.col("process") == best)[SELECTION_METRIC]
    return {"expanding_process": best, "expanding_sharpe": sharpe[0] if sharpe.len() else None}


def rolling_origin(
    metrics: pl.DataFrame, years: list[int], specs: dict[str, ProcessSpec]
) -> pl.DataFrame:
    """One row per year ``Y`` (with ``Y - 1`` replayed): the process the rule picks on
    ``Y - 1``, its parameters, and every process's Sharpe and total return in ``Y``.

    ``metrics`` rows are named by window ``str(year)``. A year whose previous year gives no
    process a defined Sharpe (a strategy without weights then, like a DRL policy before its
    training window ends) has no row: there was nothing to choose on.
    """
    rows = []
    for year in years:
        if not _has_scores(metrics, str(year - 1)):
            continue  # nothing to choose on: e.g. the strategy has no weights that year yet
        choice = choose_process(metrics, str(year - 1))
        following = metrics.filter(pl.col("window") == str(year))
        if following.is_empty():
            continue
        chosen = following.filter(pl.col("process") == choice.process).row(0, named=True)
        row = {
            "year": year,
            "chosen_on": year - 1,
            "process": choice.process,
            "family": specs[choice.process].family,
            **specs[choice.process].parameters(),
            "reason": choice.reason,
            "chosen_sharpe_on_previous_year": choice.sharpe,
            "sharpe": chosen["sharpe"],
            "total_return": chosen["total_return"],
            "max_drawdown": chosen["max_drawdown"],
            "turnover": chosen["turnover"],
            "cost_paid": chosen["cost_paid"],
            "trading_days": chosen["trading_days"],
        }
        row.update(_expanding_choice(metrics, year, following))
        for process, sharpe, total in following.select(
            "process", "sharpe", "total_return"
        ).iter_rows():
            row[f"sharpe__{process}"] = sharpe
            row[f"total_return__{process}"] = total
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)
