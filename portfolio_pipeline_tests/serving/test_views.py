"""The pure readers, the SVG plots and the dashboard HTML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, timedelta

import pytest

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.operations.notifications import RiskLimits
from portfolio_pipeline.recommendations.processes import PROCESSES
from portfolio_pipeline.serving import dashboard, health, performance, plots, queries, risk_report
from portfolio_pipeline.serving.snapshot import SnapshotReader, WarehouseUnavailable
from portfolio_pipeline_tests.serving import tiny_warehouse as tiny


@pytest.fixture()
def cur(tiny_path):
    with warehouse.connection(tiny_path, read_only=True) as con:
        yield con


def test_the_recommended_process_and_nightly_job_names_exist():
    from portfolio_pipeline.operations.jobs import DAILY_REFRESH_JOB

    assert queries.RECOMMENDED_PROCESS in PROCESSES
    assert health.NIGHTLY_JOB == DAILY_REFRESH_JOB


def test_equity_curves_leave_out_the_confidence_grid(cur):
    curves = performance.equity_curves(cur)
    assert {(c.process, c.window) for c in curves} == {
        (p, w) for p in ("recommended", "target") for w in ("validation", "test")
    }
    assert all(c.equity == tiny.EQUITY and len(c.dates) == 5 for c in curves)
    assert len(performance.equity_curves(cur, skip_grid=False)) == 6


def test_risk_breaches_follow_the_limits(cur):
    assert [b.metric for b in risk_report.risk(cur, RiskLimits()).breaches] == ["var_hist_95"]
    loose = RiskLimits(limits={"var_hist_95": 0.1, "max_drawdown": 0.5})
    assert risk_report.risk(cur, loose).breaches == []


def test_recommendation_set_not_found(cur):
    with pytest.raises(queries.NotFound, match="strategy=hrp"):
        queries.recommendation_set(cur, as_of=tiny.EARLIER_DAY, strategy="hrp")


def test_require_names_table_and_columns(cur):
    with pytest.raises(queries.SchemaMismatch, match="lacks column\\(s\\) nope, other"):
        queries.require(cur, tables.RECOMMENDATIONS, ("action", "nope", "other"))
    with pytest.raises(queries.SchemaMismatch, match="ml.nothing does not exist"):
        queries.require(cur, "ml.nothing", ("x",))


def test_line_chart_is_valid_svg_with_one_polyline_per_series():
    days = [date(2024, 1, d) for d in range(1, 6)]
    svg = plots.line_chart(
        [plots.Series("a<b", days, [1, 2, 3, 2, 1]), plots.Series("c", days, [1, 1, 1, 1, 1])], "T&"
    )
    root = ET.fromstring(svg)
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2 and len(lines[0].get("points").split()) == 5
    # the highest point of the first series is drawn at the top of the plot area
    ys = [float(p.split(",")[1]) for p in lines[0].get("points").split()]
    assert ys.index(min(ys)) == 2
    assert "no data" in plots.line_chart([], "empty")


def test_bar_chart_scales_bars_to_the_largest_value():
    svg = plots.bar_chart(["A", "B"], [("now", [0.5, 0.25]), ("after", [0.0, 0.5])], "w")
    widths = [float(w) for w in re.findall(r'class="bar" x="\d+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[0] == widths[3] == pytest.approx(2 * widths[2]) and widths[1] == 0
    ET.fromstring(svg)


def _data(cur, config, **changes):
    rec = queries.recommendation_set(cur)
    data = dashboard.DashboardData(
        health=health.health(cur, config, health.NoRunStatus()),
        recommendations=dashboard.Section(rec),
        curves=dashboard.Section(performance.equity_curves(cur)),
        track_record=dashboard.Section(performance.track_record(cur)),
        risk=dashboard.Section(risk_report.risk(cur, RiskLimits())),
    )
    return replace(data, **changes)


def test_dashboard_shows_trades_with_reasons_escaped(cur, config):
    page = dashboard.render_dashboard(_data(cur, config))
    trades = page[
        page.index('<table id="trades">') : page.index("</table>", page.index('id="trades"'))
    ]
    assert trades.count("<tr>") == 3  # header + BUY + SELL (no HOLD)
    assert "BUY: hrp target above current &lt;b&gt;&amp;" in trades and "<b>&" not in trades
    assert page.count("<polyline") == 4 and "BREACH: current var_hist_95" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN
    assert "<script" not in page


def test_dashboard_sections_degrade_and_extra_sections_show(cur, config):
    data = _data(
        cur, config,
        risk=dashboard.Section(missing="table portfolio.risk_metrics does not exist"),
        extra_sections=[("Market brief", "<p>brief body</p>")],
    )  # fmt: skip
    page = dashboard.render_dashboard(data)
    assert "not available: table portfolio.risk_metrics does not exist" in page
    assert "<h2>Market brief</h2><p>brief body</p>" in page


def test_snapshot_reader_reports_a_missing_file_and_a_directory(tmp_path):
    for path, message in (
        (tmp_path / "none.duckdb", "does not exist yet"),
        (tmp_path, "directory"),
    ):
        with pytest.raises(WarehouseUnavailable, match=message), SnapshotReader(path).snapshot():
            pass


def test_snapshot_memo_is_per_published_file(tiny_path):
    reader = SnapshotReader(tiny_path)
    calls = []
    for _ in range(2):
        with reader.snapshot() as snap:
            snap.memo("k", lambda: calls.append(1) or len(calls))
    assert len(calls) == 1
    tiny.publish_new_run(tiny_path, "again", tiny.GENERATED_AT)
    with reader.snapshot() as snap:
        assert snap.memo("k", lambda: calls.append(1) or len(calls)) == 2
    assert not list(tiny_path.parent.glob("*.snapshot"))  # private links are removed
    reader.close()


def test_without_hard_links_the_path_is_reopened_once_free(tiny_path, monkeypatch):
    """A directory where no link can be made: the open snapshot serves until no request
    holds it, then the new file is opened by its path."""
    import os

    def refuse(*_args, **_kwargs):
        raise PermissionError("read-only directory")

    monkeypatch.setattr(os, "link", refuse)
    reader = SnapshotReader(tiny_path)
    with reader.snapshot() as held:
        tiny.publish_new_run(tiny_path, "later", tiny.GENERATED_AT + timedelta(days=1))
        with reader.snapshot() as during:
            assert during is held  # still in use: no second instance of the same path
    with reader.snapshot() as snap, reader.cursor(snap) as cur:
        latest = queries.recommendation_set(cur).run_id
    assert latest == "later"
    reader.close()


def test_the_replay_charts_show_the_chosen_process_against_the_simple_alternatives():
    from datetime import date

    days = (date(2024, 1, 1), date(2024, 1, 2))
    names = ["recommended", "target", "band_5pct", "never_trade", "cost_aware_g4_k3", "gated_c50"]
    curves = [
        performance.EquityCurve(n, w, days, (1.0, 1.1))
        for n in names
        for w in ("validation", "test")
    ]
    html = dashboard._curves(curves)
    assert (
        html.count("<polyline") == 8
    )  # 4 processes x 2 windows; the 13-process grid is in the API
    assert "cost_aware_g4_k3" not in html and 'href="/processes"' in html
