"""The facts of one recommendation run, read from its own tables and written out as text.

Pure (no dagster). Every number a market brief may state comes from :func:`facts_lines`: the
template writes them, the model's prompt carries them, and the number check
(:func:`~portfolio_pipeline.recommendations.brief.ungrounded_numbers`) accepts no other.

Point in time: everything is read for the run's ``as_of``; news only up to ``as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

import polars as pl

from portfolio_pipeline import tables

# The processes of the recommendation replay worth a sentence (the c50..c95 gate sweeps are
# for choosing the gate on validation, not for the brief).
BRIEF_PROCESSES = ("recommended", "target", "ungated", "band_5pct", "never_trade")
RISK_METRICS = ("var_hist_95", "cvar_95", "ann_vol", "max_drawdown")
NEWS_LOOKBACK_DAYS = 7
MARKET_NEWS_SYMBOL = "MARKET"


class BriefInputError(ValueError):
    """The run's tables cannot make a brief; the message names the table and the run."""


@dataclass(frozen=True)
class BriefFacts:
    """What a brief may say about one recommendation run (frames as read, filtered to it).

    recommendations: the run's rows (symbol, action, current/target weight, expected return
    and its band, reason ...); processes: the replay's metrics per process and window; risk:
    ``portfolio.risk_metrics`` at ``as_of``; stress: ``portfolio.stress_tests`` at ``as_of``;
    news: digest rows (one per symbol and day, with the summary) of the days up to ``as_of``
    in the look-back, else of the latest earlier day; forecasts: ``ml.return_forecasts`` at
    ``as_of``.
    """

    run_id: str
    as_of: date
    strategy: str
    cash_symbol: str
    recommendations: pl.DataFrame
    processes: pl.DataFrame
    risk: pl.DataFrame
    stress: pl.DataFrame
    news: pl.DataFrame
    forecasts: pl.DataFrame


def _read(con, table: str, where: str = "", params: tuple = ()) -> pl.DataFrame:
    if not con.execute(
        "select count(*) from information_schema.tables where table_schema || '.' || "
        "table_name = ?",
        [table],
    ).fetchone()[0]:
        return pl.DataFrame()
    return con.execute(f"select * from {table} {where}", list(params)).pl()


def read_brief_facts(con, run_id: str | None = None, cash_symbol: str = "USDT") -> BriefFacts:
    """The facts of recommendation run ``run_id`` (default: the latest) from the warehouse."""
    recs = _read(
        con,
        tables.RECOMMENDATIONS,
        f"where run_id = coalesce(?, (select run_id from {tables.RECOMMENDATIONS} "
        "order by generated_at desc limit 1))",
        (run_id,),
    )
    if recs.is_empty():
        raise BriefInputError(f"{tables.RECOMMENDATIONS} has no run {run_id or '(latest)'}")
    as_of = recs["as_of"][0]
    digest = _read(con, tables.NEWS_DIGEST, "where date <= ?", (as_of,))
    return BriefFacts(
        run_id=recs["run_id"][0],
        as_of=as_of,
        strategy=recs["strategy"][0],
        cash_symbol=cash_symbol,
        recommendations=recs,
        processes=_read(con, tables.RECOMMENDATION_BACKTEST_METRICS),
        risk=_read(con, tables.RISK_METRICS, "where as_of = ?", (as_of,)),
        stress=_read(con, tables.STRESS_TESTS, "where as_of = ?", (as_of,)),
        news=recent_news(digest, as_of),
        forecasts=_read(con, tables.RETURN_FORECASTS, "where as_of = ?", (as_of,)),
    )


def recent_news(digest: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """One row per symbol and day (the top headline and the summary) of the days in the
    look-back up to ``as_of``, or of the latest day before it when the look-back has none."""
    if digest.is_empty():
        return digest
    known = digest.filter(pl.col("date") <= as_of)
    recent = known.filter(pl.col("date") > as_of - timedelta(days=NEWS_LOOKBACK_DAYS))
    if recent.is_empty() and known.height:
        recent = known.filter(pl.col("date") == known["date"].max())
    return recent.filter(pl.col("rank") == 1).sort(
        [pl.col("date"), pl.col("symbol") != MARKET_NEWS_SYMBOL, pl.col("symbol")],
        descending=[True, False, False],
    )


def pct(value: float | None) -> str:
    """A fraction as a percentage with two decimals (``0.1234`` -> ``12.34%``)."""
    return "n/a" if value is None else f"{value * 100:.2f}%"


def fixed(value: float | None, suffix: str = "") -> str:
    """A number with two decimals (``1.2345`` -> ``1.23``), ``n/a`` when missing."""
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def facts_lines(facts: BriefFacts) -> list[str]:
    """The facts as ``key: value`` lines: the only numbers a brief may state."""
    lines = [
        *_run_lines(facts),
        *_recommendation_lines(facts.recommendations, facts.cash_symbol),
        *_process_lines(facts.processes),
        *_risk_lines(facts.risk, facts.stress),
        *_forecast_lines(facts.forecasts, facts.recommendations),
        *_news_lines(facts.news, facts.as_of),
    ]
    return [line for line in lines if line]


def _run_lines(facts: BriefFacts) -> list[str]:
    recs = facts.recommendations
    trades = recs.filter(pl.col("action") != "HOLD")
    value = recs["portfolio_value"][0] if "portfolio_value" in recs.columns else None
    return [
        f"run: {facts.run_id} as of {facts.as_of} with strategy {facts.strategy}",
        f"portfolio value: {value:,.2f} {facts.cash_symbol}" if value is not None else "",
        f"trades: {trades.height} ({trades.filter(pl.col('action') == 'BUY').height} buy, "
        f"{trades.filter(pl.col('action') == 'SELL').height} sell); "
        f"unchanged: {recs.height - trades.height}",
    ]


def _recommendation_lines(recs: pl.DataFrame, cash_symbol: str) -> list[str]:
    ordered = recs.with_columns(
        (pl.col("target_weight") - pl.col("current_weight")).abs().alias("_move")
    ).sort(["_move", "target_weight", "symbol"], descending=[True, True, False])
    lines = []
    for row in ordered.iter_rows(named=True):
        if row["symbol"] == cash_symbol:
            lines.append(f"cash {row['symbol']}: weight {pct(row['target_weight'])}")
            continue
        band = f"{pct(row['return_low'])} to {pct(row['return_high'])}"
        lines.append(
            f"{row['action']} {row['symbol']}: weight {pct(row['current_weight'])} -> "
            f"{pct(row['target_weight'])}; expected return {pct(row['expected_return'])} "
            f"({band}) over {row['horizon_days'] or 'n/a'} days; reason: {row['reason']}"
        )
    return lines


def _process_lines(processes: pl.DataFrame) -> list[str]:
    if processes.is_empty():
        return ["replay: none"]
    rows = processes.filter(pl.col("process").is_in(BRIEF_PROCESSES)).sort("window", "process")
    return [
        f"replay {r['process']} on {r['window']} ({r['start']}..{r['end']}): total return "
        f"{pct(r['total_return'])}, Sharpe {fixed(r['sharpe'])}, max drawdown "
        f"{pct(r['max_drawdown'])}"
        for r in rows.iter_rows(named=True)
    ]


def _risk_lines(risk: pl.DataFrame, stress: pl.DataFrame) -> list[str]:
    lines = []
    for portfolio in ("current", "recommended"):
        values = risk.filter(pl.col("portfolio") == portfolio) if risk.height else risk
        found = {r["metric"]: r["value"] for r in values.iter_rows(named=True)}
        shown = [f"{m} {pct(found[m])}" for m in RISK_METRICS if found.get(m) is not None]
        if shown:
            lines.append(f"risk {portfolio}: " + ", ".join(shown))
    if stress.height:
        worst = stress.filter(pl.col("portfolio") == "recommended").sort("pnl_pct").head(3)
        lines += [
            f"stress recommended {r['scenario']}: {fixed(r['pnl_pct'], '%')} ({r['description']})"
            for r in worst.iter_rows(named=True)
        ]
    return lines


def _forecast_lines(forecasts: pl.DataFrame, recs: pl.DataFrame) -> list[str]:
    if forecasts.is_empty():
        return []
    traded = recs.filter(pl.col("action") != "HOLD")["symbol"].to_list()
    chosen = forecasts.filter(pl.col("symbol").is_in(traded)).sort("symbol", "horizon_days")
    return [
        f"forecast {r['symbol']} {r['horizon_days']} days: q10 {pct(r['q10'])}, "
        f"q50 {pct(r['q50'])}, q90 {pct(r['q90'])}"
        for r in chosen.iter_rows(named=True)
    ]


def _news_lines(news: pl.DataFrame, as_of: date) -> list[str]:
    if news.is_empty():
        return [f"news: none up to {as_of}"]
    latest = cast(date, news["date"].max())  # a Date column's max is a date
    age = (as_of - latest).days
    lines = [f"news: latest day {latest} ({age} days before {as_of})"]
    for r in news.head(8).iter_rows(named=True):
        summary = r.get("summary") or r["title"]
        lines.append(f"news {r['symbol']} {r['date']}: {summary}")
    return lines
