import dataclasses
from datetime import date

import dagster as dg
import polars as pl
import pytest

from portfolio_pipeline.market import partitions
from portfolio_pipeline.market.assets import raw_ohlcv
from portfolio_pipeline.news.assets import raw_news
from portfolio_pipeline.warehouse import connection
from portfolio_pipeline_tests.helpers import materialize_range, pipeline_resources

JAN_2022 = (date(2022, 1, 1), date(2022, 1, 31))


def _stored(path):
    with connection(path, read_only=True) as con:
        return con.execute(
            "select symbol, date, open, high, low, close, volume from market.raw_ohlcv "
            "order by symbol, date"
        ).pl()


def test_backfill_is_single_run_and_idempotent(
    tmp_warehouse, monkeypatch, sample_ohlcv, sample_news
):
    resources = pipeline_resources(tmp_warehouse)
    first = materialize_range([raw_ohlcv, raw_news], "2022-01", "2022-01", resources)
    assert first.success
    expected = sample_ohlcv.filter(pl.col("date").is_between(*JAN_2022))
    stored = _stored(tmp_warehouse)
    assert stored.height == expected.height and stored["symbol"].n_unique() == 21
    expected_news = sample_news.filter(pl.col("published_at").dt.date().is_between(*JAN_2022))
    again = materialize_range([raw_ohlcv, raw_news], "2022-01", "2022-01", resources)
    assert again.success
    assert _stored(tmp_warehouse).equals(stored)
    with connection(tmp_warehouse, read_only=True) as con:
        assert (
            con.execute("select count(*) from news.raw_news").fetchone()[0] == expected_news.height
        )
    checks = [e for e in again.get_asset_check_evaluations() if e.asset_key.path == ["raw_ohlcv"]]
    assert len(checks) == 9 and all(c.passed for c in checks)


def test_day_without_news_is_not_an_error(tmp_warehouse, monkeypatch):
    resources = pipeline_resources(tmp_warehouse)
    assert materialize_range([raw_news], "2019-05", "2019-05", resources).success


def _files_resources(tmp_path, tmp_warehouse, monkeypatch):
    return pipeline_resources(
        tmp_warehouse,
        ohlcv_source="files",
        files_dir=tmp_path / "files",
        symbols=("BTCUSDT", "ETHUSDT"),
    )


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        ("high_below_low", ["ohlcv_high_ge_open_close", "ETHUSDT 2024-01-03"]),
        ("missing_column", ["required_columns", "close"]),
        ("non_numeric_price", ["numeric_and_date_values", "'open'", "ETHUSDT 2024-01-03"]),
    ],
)
def test_corrupt_file_fails_and_keeps_stored_rows(
    tmp_path, tmp_warehouse, monkeypatch, sample_ohlcv, corrupt, expected
):
    folder = tmp_path / "files" / "ohlcv"
    folder.mkdir(parents=True)
    good = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"])
        & pl.col("date").is_between(date(2024, 1, 1), date(2024, 1, 5))
    ).select("symbol", "date", "open", "high", "low", "close", "volume")
    good.write_csv(folder / "prices.csv")
    resources = _files_resources(tmp_path, tmp_warehouse, monkeypatch)
    assert materialize_range([raw_ohlcv], "2024-01", "2024-01", resources).success
    before = _stored(tmp_warehouse)
    assert before.height == 10

    hit = (pl.col("symbol") == "ETHUSDT") & (pl.col("date") == date(2024, 1, 3))
    if corrupt == "high_below_low":
        bad = good.with_columns(
            pl.when(hit).then(pl.col("low") * 0.5).otherwise("high").alias("high")
        )
    elif corrupt == "missing_column":
        bad = good.drop("close")
    else:
        bad = good.with_columns(pl.col("open").cast(pl.Utf8)).with_columns(
            pl.when(hit).then(pl.lit("n/a")).otherwise("open").alias("open")
        )
    bad.write_csv(folder / "prices.csv")
    result = materialize_range([raw_ohlcv], "2024-01", "2024-01", resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    message = (failure.user_failure_data.description if failure.user_failure_data else "") or ""
    message += failure.error.message if failure.error else ""
    for part in expected:
        assert part in message
    assert _stored(tmp_warehouse).equals(before)


def test_definitions_list_assets_and_blocking_checks():
    from portfolio_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_ohlcv", "raw_news"} <= keys
    specs = {s.name: s for s in raw_ohlcv.check_specs}
    assert specs["ohlcv_high_ge_open_close"].blocking and not specs["ohlcv_no_gaps"].blocking
    assert isinstance(raw_ohlcv.partitions_def, dg.MonthlyPartitionsDefinition)
    assert graph.get(raw_ohlcv.key).backfill_policy == dg.BackfillPolicy.single_run()


def test_partitions_come_from_the_settings_given_to_build_definitions(monkeypatch):
    from portfolio_pipeline.definitions import build_definitions
    from portfolio_pipeline.settings import load_settings

    monkeypatch.setenv("PORTFOLIO_PIPELINE_START", "2015-03-10")
    graph = build_definitions(load_settings()).resolve_asset_graph()
    for key in (raw_ohlcv.key, raw_news.key):
        node = graph.get(key)
        assert node.partitions_def.get_first_partition_key() == "2015-03"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert set((raw_ohlcv if key == raw_ohlcv.key else raw_news).check_keys) <= node.check_keys
    # The declared default is untouched (other definitions keep theirs).
    assert raw_ohlcv.partitions_def.get_first_partition_key() == "2017-08"


def test_a_month_is_read_from_the_start_day_up_to_yesterday_only(
    tmp_path, tmp_warehouse, monkeypatch, sample_ohlcv
):
    """The month in progress is a partition; a day is complete only after its close, so a
    run never stores the candle of today (here: pretend today is 2024-01-04). The first month
    is read from the start setting's day (here 2024-01-02), not from the 1st."""
    folder = tmp_path / "files" / "ohlcv"
    folder.mkdir(parents=True)
    sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"])
        & pl.col("date").is_between(date(2024, 1, 1), date(2024, 1, 5))
    ).select("symbol", "date", "open", "high", "low", "close", "volume").write_csv(
        folder / "prices.csv"
    )
    resources = _files_resources(tmp_path, tmp_warehouse, monkeypatch)
    resources["settings"] = dataclasses.replace(resources["settings"], start_date=date(2024, 1, 2))
    monkeypatch.setattr(partitions, "yesterday_utc", lambda: date(2024, 1, 3))
    assert materialize_range([raw_ohlcv], "2024-01", "2024-01", resources).success
    stored = _stored(tmp_warehouse)
    assert (stored["date"].min(), stored["date"].max()) == (date(2024, 1, 2), date(2024, 1, 3))
    assert stored.height == 4
    # A month with no complete day yet fails, naming the partition, and writes nothing.
    monkeypatch.setattr(partitions, "yesterday_utc", lambda: date(2023, 12, 31))
    result = materialize_range([raw_ohlcv], "2024-01", "2024-01", resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    assert "partition 2024-01 has no complete day yet" in failure.user_failure_data.description
    assert _stored(tmp_warehouse).equals(stored)


def test_month_keys_cover_every_month_of_a_day_range():
    assert partitions.month_keys(date(2023, 12, 31), date(2024, 2, 1)) == [
        "2023-12",
        "2024-01",
        "2024-02",
    ]
    assert partitions.month_keys(date(2024, 2, 29), date(2024, 2, 29)) == ["2024-02"]
