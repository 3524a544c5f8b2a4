"""The API on the tiny warehouse through FastAPI's test client: values, validation, errors,
access and new snapshots picked up without a restart."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from portfolio_pipeline import tables
from portfolio_pipeline.operations.notifications import RiskLimits
from portfolio_pipeline.serving.app import authorized, create_app
from portfolio_pipeline_tests.serving import tiny_warehouse as tiny


def test_latest_recommendations_are_the_newest_run(client):
    body = client.get("/recommendations/latest").json()
    assert (body["run_id"], body["strategy"], body["process"]) == (
        tiny.NEW_RUN,
        "hrp",
        "recommended",
    )
    assert body["as_of"] == tiny.LATEST_DAY.isoformat()
    assert body["trades"] == 2
    assert body["turnover"] == pytest.approx(1500 / 10_000)
    assert [r["action"] for r in body["rows"]] == ["BUY", "SELL", "HOLD", "HOLD"]
    assert body["rows"][0]["reason"].startswith("BUY: hrp target")


def test_recommendations_by_day_and_strategy(client):
    old = client.get("/recommendations", params={"as_of": tiny.EARLIER_DAY.isoformat()}).json()
    assert (old["run_id"], old["strategy"], old["trades"]) == (tiny.OLD_RUN, "min_variance", 1)
    by_strategy = client.get("/recommendations/latest", params={"strategy": "min_variance"})
    assert by_strategy.json()["run_id"] == tiny.OLD_RUN
    missing = client.get("/recommendations", params={"as_of": "2020-01-01"})
    assert missing.status_code == 404 and "as_of=2020-01-01" in missing.json()["detail"]


@pytest.mark.parametrize(
    "path,params,parameter",
    [
        ("/recommendations", {"as_of": "2025-13-01"}, "as_of"),
        ("/recommendations", {"as_of": "yesterday"}, "as_of"),
        ("/recommendations", {}, "as_of"),
        ("/recommendations/latest", {"strategy": "no_such_strategy"}, "strategy"),
        ("/backtests", {"strategy": "x'; drop table portfolio.recommendations; --"}, "strategy"),
        ("/backtests", {"window": "train"}, "window"),
        ("/processes", {"window": "2024"}, "window"),
        ("/forecasts/latest", {"horizon_days": "0"}, "horizon_days"),
        ("/forecasts/latest", {"horizon_days": "eight"}, "horizon_days"),
        ("/forecasts/latest", {"symbol": "btc usdt"}, "symbol"),
    ],
)
def test_malformed_parameters_get_a_422_naming_the_parameter(client, path, params, parameter):
    reply = client.get(path, params=params)
    assert reply.status_code == 422, reply.text
    assert [e["loc"] for e in reply.json()["detail"]] == [["query", parameter]]


def test_unknown_strategy_lists_the_known_ones(client):
    detail = client.get("/recommendations/latest", params={"strategy": "nope"}).json()["detail"]
    assert "hrp" in detail[0]["msg"] and "min_variance" in detail[0]["msg"]


def test_track_record_backtests_processes_forecasts(client):
    track = client.get("/recommendations/track-record").json()
    assert (track["runs"], track["trades"], track["hit_rate"]) == (1, 2, 0.5)
    assert track["value_added"] == pytest.approx(69.3 - 15.3)
    backtests = client.get("/backtests").json()
    assert {(b["strategy"], b["window"]) for b in backtests} == {
        (s, w) for s in ("hrp", "min_variance") for w in ("validation", "test")
    }
    selected = [b["strategy"] for b in backtests if b["selected_for_recommendations"]]
    assert selected == ["hrp"]
    test_only = client.get("/processes", params={"window": "test"}).json()
    assert {p["process"] for p in test_only} == {"recommended", "target", "recommended_c50"}
    assert {p["window"] for p in test_only} == {"test"}
    forecasts = client.get("/forecasts/latest", params={"horizon_days": 8}).json()
    assert forecasts["as_of"] == tiny.LATEST_DAY.isoformat()
    assert [(f["symbol"], f["q50"], f["vol_forecast"]) for f in forecasts["rows"]] == [
        ("AAAUSDT", 0.08, 0.4), ("BBBUSDT", 0.08, None)
    ]  # fmt: skip


def test_risk_reports_the_latest_day_and_its_breaches(client):
    body = client.get("/risk").json()
    assert body["as_of"] == tiny.LATEST_DAY.isoformat()
    assert [p["portfolio"] for p in body["portfolios"]] == ["current", "recommended", "target:hrp"]
    current = body["portfolios"][0]["metrics"]
    assert current["var_hist_95"] == 0.09 and current["ann_vol"] is None  # NaN -> null
    assert [(b["portfolio"], b["metric"]) for b in body["breaches"]] == [("current", "var_hist_95")]
    assert {(s["portfolio"], s["scenario"]) for s in body["stress_tests"]} >= {("current", "ftx")}


def test_health_is_ok_for_a_snapshot_source_and_reports_ages(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["latest_data_day"] == tiny.LATEST_DAY.isoformat()
    assert body["latest_recommendation"]["run_id"] == tiny.NEW_RUN
    assert body["last_nightly_run"]["status"] == "UNKNOWN" and body["last_nightly_run"]["reason"]


def test_health_is_503_when_live_data_is_stale(tmp_path, config):
    live = replace(config, ohlcv_source="binance", max_data_age=timedelta(hours=36))
    with TestClient(create_app(live, limits=RiskLimits())) as client:
        reply = client.get("/health")
    assert reply.status_code == 503
    assert reply.json()["status"] == "stale" and "market.raw_ohlcv" in reply.json()["reason"]
    fresh = tiny.build(tmp_path / "fresh.duckdb", last_day=datetime.now(UTC).date())
    with TestClient(create_app(replace(live, warehouse_path=fresh), limits=RiskLimits())) as client:
        assert client.get("/health").status_code == 200


def test_missing_warehouse_is_503_with_the_reason(tmp_path, config):
    gone = replace(config, warehouse_path=tmp_path / "nowhere" / "warehouse.duckdb")
    with TestClient(create_app(gone, limits=RiskLimits())) as client:
        for path in ("/recommendations/latest", "/risk", "/health", "/"):
            reply = client.get(path)
            assert reply.status_code == 503, path
            assert "does not exist yet" in reply.text and "materialize" in reply.text
        assert client.get("/health").json()["status"] == "unavailable"
        assert client.get("/metrics").status_code == 200


def test_older_schema_names_the_table_and_column(tiny_path, client):
    tiny.drop_column(tiny_path, tables.RECOMMENDATIONS, "action")
    reply = client.get("/recommendations/latest")
    assert reply.status_code == 503
    detail = reply.json()["detail"]
    assert tables.RECOMMENDATIONS in detail and "action" in detail and "older" in detail


def test_missing_table_is_named(tmp_path, config):
    path = tiny.build(tmp_path / "partial.duckdb", skip=(tables.RISK_METRICS,))
    with TestClient(create_app(replace(config, warehouse_path=path), limits=RiskLimits())) as c:
        reply = c.get("/risk")
        page = c.get("/")
    assert reply.status_code == 503 and tables.RISK_METRICS in reply.json()["detail"]
    assert page.status_code == 200 and f"table {tables.RISK_METRICS} does not exist" in page.text


def test_a_new_snapshot_is_served_without_a_restart(tiny_path, client):
    assert client.get("/recommendations/latest").json()["run_id"] == tiny.NEW_RUN
    tiny.publish_new_run(tiny_path, "run-newer", tiny.GENERATED_AT + timedelta(days=1))
    assert client.get("/recommendations/latest").json()["run_id"] == "run-newer"


def test_an_open_snapshot_never_blocks_a_run(tiny_path, client):
    reader = client.app.state.ctx.reader
    with reader.snapshot() as held, reader.cursor(held) as cur:
        tiny.publish_new_run(tiny_path, "run-during-read", tiny.GENERATED_AT + timedelta(days=2))
        old = cur.execute(f"select distinct run_id from {tables.RECOMMENDATIONS} order by 1")
        assert [r[0] for r in old.fetchall()] == [tiny.NEW_RUN, tiny.OLD_RUN]
    assert client.get("/recommendations/latest").json()["run_id"] == "run-during-read"


def test_token_guards_everything_but_health(config):
    token = "s3cret-token-value"
    with TestClient(create_app(replace(config, token=token), limits=RiskLimits())) as client:
        for path in ("/recommendations/latest", "/metrics", "/", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 401, path
            wrong = client.get(path, headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401, path
            good = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert good.status_code == 200, path
        assert client.get("/health").status_code == 200
        schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {token}"}).json()
    assert schema["paths"]["/risk"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_authorized_needs_the_bearer_scheme_and_the_exact_token():
    assert authorized("Bearer abc", "abc") and authorized("bearer abc", "abc")
    assert not any(authorized(h, "abc") for h in (None, "", "abc", "Basic abc", "Bearer abcd"))


def test_openapi_documents_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/health", "/recommendations/latest", "/recommendations",
                 "/recommendations/track-record", "/backtests", "/processes", "/risk",
                 "/forecasts/latest", "/metrics"):  # fmt: skip
        assert path in paths
    as_of = paths["/recommendations"]["get"]["parameters"][0]
    assert (as_of["name"], as_of["schema"]["format"]) == ("as_of", "date")
    assert not any(p["name"].lower() in ("sql", "query") for op in paths.values()
                   for p in op["get"].get("parameters", []))  # fmt: skip
