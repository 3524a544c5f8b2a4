"""The one-page dashboard at ``/``: server-rendered HTML with inline SVG, no script, no CDN.

Pure (no dagster). :func:`render_dashboard` takes the page's sections already read from one
snapshot (:class:`DashboardData`, built by ``routes``); a section whose table is missing shows
why instead of failing the page. ``extra_sections`` is where other reports (the market brief
of issue 25) add a titled block of HTML without touching this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TypeVar

from portfolio_pipeline.serving import models, plots
from portfolio_pipeline.serving.performance import EquityCurve

T = TypeVar("T")
RISK_SHOWN = ("var_hist_95", "cvar_95", "var_hist_99", "cvar_99", "ann_vol", "max_drawdown")

STYLE = """
body{font-family:sans-serif;margin:16px 24px;color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
td.text,th.text{text-align:left} .muted{color:#777;font-size:12px} .bad{color:#b00;font-weight:bold}
.BUY{color:#087f23;font-weight:bold} .SELL{color:#b00;font-weight:bold}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px}
svg.chart{width:100%;height:auto;max-width:720px}
"""


@dataclass(frozen=True)
class Section:
    """A section's content, or why it could not be read (``missing``)."""

    value: object = None
    missing: str | None = None


def section(read: Callable[[], T], expected: tuple[type[Exception], ...]) -> Section:
    try:
        return Section(read())
    except expected as exc:
        return Section(missing=str(exc))


@dataclass(frozen=True)
class DashboardData:
    health: models.Health
    recommendations: Section
    curves: Section
    track_record: Section
    risk: Section
    extra_sections: Sequence[tuple[str, str]] = field(default_factory=tuple)


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, id_: str, text_cols=(0,)
) -> str:
    """``rows`` hold HTML (escaped by the caller); ``text_cols`` are left-aligned."""

    def cls(i: int) -> str:
        return "text" if i in text_cols else ""

    head = "".join(f'<th class="{cls(i)}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{cls(i)}">{cell}</td>' for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{id_}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _missing(text: str) -> str:
    return f'<p class="muted">not available: {escape(text)}</p>'


def _trades(rec: models.RecommendationSet) -> str:
    trades = [r for r in rec.rows if r.action != "HOLD"]
    rows = [
        [escape(r.symbol), f'<span class="{escape(r.action)}">{escape(r.action)}</span>',
         _num(r.quantity, 6), _num(r.notional), _pct(r.current_weight), _pct(r.target_weight),
         _pct(r.expected_return), f'<span class="reason">{escape(r.reason or "")}</span>']
        for r in trades
    ]  # fmt: skip
    if not rows:
        rows = [["–", "no trades today", "", "", "", "", "", ""]]
    caption = (
        f"<p>{len(trades)} trade(s) as of {rec.as_of}, strategy <b>{escape(rec.strategy)}</b>, "
        f"process {escape(rec.process)}, turnover {_pct(rec.turnover)}, run "
        f'<span class="muted">{escape(rec.run_id)}</span></p>'
    )
    headers = ["symbol", "action", "quantity", "notional", "now", "after", "exp. return", "reason"]
    return caption + _table(headers, rows, id_="trades", text_cols=(0, 1, 7))


def _weights(rec: models.RecommendationSet) -> str:
    shown = [
        r for r in rec.rows
        if max(r.current_weight or 0.0, r.target_weight or 0.0, r.strategy_weight or 0.0) > 0
    ]  # fmt: skip
    return plots.bar_chart(
        [r.symbol for r in shown],
        [
            ("now", [r.current_weight or 0.0 for r in shown]),
            ("after trades", [r.target_weight or 0.0 for r in shown]),
            (f"target ({rec.strategy})", [r.strategy_weight or 0.0 for r in shown]),
        ],
        "Portfolio weights",
    )


# The chosen process against the simple alternatives: with all 13 candidates the lines and
# the legend are unreadable; every process is in GET /processes.
CHARTED_PROCESSES = ("recommended", "target", "band_5pct", "never_trade")


def _curves(curves: list[EquityCurve]) -> str:
    charts = []
    for window in ("validation", "test"):
        series = [
            plots.Series(c.process, c.dates, c.equity)
            for c in curves
            if c.window == window and c.process in CHARTED_PROCESSES
        ]
        charts.append(plots.line_chart(series, f"Recommendation processes: equity on {window}"))
    note = (
        '<p class="note">the process followed (recommended) against following the target, a '
        '5-point band and doing nothing; every process: <a href="/processes">/processes</a></p>'
    )
    return '<div class="grid">' + "".join(charts) + "</div>" + note


def _track(track: models.TrackRecord) -> str:
    rows = [
        [str(r.as_of), escape(r.run_id), str(r.trades), _pct(r.hit_rate, 0), _num(r.value_added),
         _num(r.cumulative_value_added)]
        for r in track.per_run[-15:]
    ]  # fmt: skip
    table = _table(
        ["as of", "run", "trades", "hit rate", "value added", "cumulative"], rows,
        id_="track-record", text_cols=(0, 1),
    )  # fmt: skip
    return f"<p>{escape(track.summary)}</p>" + (table if rows else "")


def _risk(risk: models.Risk) -> str:
    shown = [p for p in risk.portfolios if not p.portfolio.startswith("target:")]
    rows = [
        [escape(metric)] + [_pct(p.metrics.get(metric)) for p in shown] for metric in RISK_SHOWN
    ]
    metrics = _table(["metric (loss, 1 day)"] + [p.portfolio for p in shown], rows, id_="risk")
    portfolios = [p.portfolio for p in shown]
    stress_rows: dict[str, dict[str, float | None]] = {}
    for s in risk.stress_tests:
        if s.portfolio in portfolios:
            stress_rows.setdefault(s.scenario, {})[s.portfolio] = s.pnl_pct
    stress = _table(
        ["stress scenario (P&L %)"] + portfolios,
        [[escape(k)] + [_num(v.get(p)) for p in portfolios] for k, v in stress_rows.items()],
        id_="stress",
    )
    limits = ", ".join(f"{escape(m)} &le; {v:.0%}" for m, v in risk.limits.items())
    if risk.breaches:
        verdict = "".join(
            f'<p class="bad">BREACH: {escape(b.description)}</p>' for b in risk.breaches
        )
    else:
        verdict = f"<p>within limits ({limits}) as of {risk.as_of}</p>"
    return verdict + '<div class="grid"><div>' + metrics + "</div><div>" + stress + "</div></div>"


def _freshness(health: models.Health) -> str:
    rows = [[escape(s.dataset), escape(s.source), "yes" if s.live else "no (snapshot)",
             str(s.newest or "–"), _num((s.age_seconds or 0) / 3600, 1),
             '<span class="bad">STALE</span>' if s.stale else "ok"]
            for s in health.sources]  # fmt: skip
    run = health.last_nightly_run
    run_text = (
        f"last {escape(run.job)}: <b>{escape(run.status)}</b>"
        + (f" ({escape(run.reason)})" if run.reason else "")
        if run
        else ""
    )
    table = _table(["dataset", "source", "live", "newest", "age (h)", "status"], rows,
                   id_="freshness", text_cols=(0, 1, 2, 3))  # fmt: skip
    return table + f"<p>{run_text}</p>"


def _block(title: str, sec: Section, render: Callable[[T], str], id_: str) -> str:
    body = _missing(sec.missing) if sec.missing is not None else render(sec.value)  # type: ignore[arg-type]
    return f'<section id="{id_}"><h2>{escape(title)}</h2>{body}</section>'


def render_dashboard(data: DashboardData) -> str:
    """The whole page as one HTML document."""
    rec = data.recommendations
    blocks = [
        _block("Today's trades", rec, _trades, "trades-section"),
        _block("Weights: now, after the trades, at target", rec, _weights, "weights-section"),
        _block("Recommendation processes (replay)", data.curves, _curves, "curves-section"),
        _block("Track record", data.track_record, _track, "track-section"),
        _block("Risk and stress", data.risk, _risk, "risk-section"),
        *(f'<section class="extra"><h2>{escape(t)}</h2>{html}</section>'
          for t, html in data.extra_sections),
        f'<section id="freshness-section"><h2>Data freshness</h2>{_freshness(data.health)}</section>',
    ]  # fmt: skip
    status = data.health.status
    headline = f'data <span class="{"bad" if status != "ok" else ""}">{escape(status)}</span>'
    if data.health.latest_data_day:
        headline += f", latest day {data.health.latest_data_day}"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Portfolio recommendations</title>"
        f"<style>{STYLE}</style></head><body>"
        f'<h1>Portfolio recommendations</h1><p class="muted">{headline}; '
        f"checked {data.health.checked_at:%Y-%m-%d %H:%M} UTC · "
        '<a href="/docs">API</a> · <a href="/metrics">metrics</a></p>'
        + "".join(blocks)
        + "</body></html>"
    )
