from datetime import date

import polars as pl
import pytest

from portfolio_pipeline import warehouse
from portfolio_pipeline.cli import main


def _seed(path):
    with warehouse.connection(path) as con:
        warehouse.replace_table(
            con,
            "market.raw_ohlcv",
            pl.DataFrame(
                {
                    "symbol": ["BTCUSDT", "ETHUSDT"],
                    "date": [date(2024, 1, 1)] * 2,
                    "close": [44179.55, 2352.04],
                }
            ),
        )


def test_query_and_status_print_tables(tmp_warehouse, monkeypatch, capsys):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_WAREHOUSE", str(tmp_warehouse))
    _seed(tmp_warehouse)
    assert (
        main(["query", "select count(*) as n, count(distinct symbol) as s from market.raw_ohlcv"])
        == 0
    )
    out = capsys.readouterr().out
    assert "│ 2   ┆ 2   │" in out or ("2" in out and "n" in out)
    assert (
        main(["query", "select symbol, close from market.raw_ohlcv order by 1", "--format", "csv"])
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "symbol,close",
        "BTCUSDT,44179.55",
        "ETHUSDT,2352.04",
    ]
    assert main(["status"]) == 0
    assert "market.raw_ohlcv" in capsys.readouterr().out


def test_failures_exit_non_zero_with_one_line(tmp_warehouse, monkeypatch, capsys):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_WAREHOUSE", str(tmp_warehouse))
    assert main(["status"]) == 1
    assert "does not exist yet" in capsys.readouterr().err
    _seed(tmp_warehouse)
    assert main(["query", "select * from nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "query failed" in err[0]
    assert main(["query", "delete from market.raw_ohlcv"]) == 1  # read-only
    assert main(["recommendations"]) == 1
    assert main(["materialize", "--select", "raw_ohlcv", "--partition", "2024-13-01"]) == 1
    assert "not a YYYY-MM-DD day" in capsys.readouterr().err


def test_python_dash_m_keeps_the_exit_code(tmp_warehouse):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PORTFOLIO_PIPELINE_WAREHOUSE": str(tmp_warehouse)}
    done = subprocess.run(
        [sys.executable, "-m", "portfolio_pipeline", "recommendations"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "error" in done.stderr


def test_partition_days_and_months_map_to_the_monthly_partitions():
    from datetime import UTC, datetime, timedelta

    from portfolio_pipeline.cli.common import CliError
    from portfolio_pipeline.cli.runs import partition_bounds
    from portfolio_pipeline.settings import load_settings

    settings = load_settings()  # start 2017-08-17: the first partition is 2017-08
    assert partition_bounds(settings, "2024-01-05") == ("2024-01-05", "2024-01-05")
    assert partition_bounds(settings, "2024-01...2024-03") == ("2024-01-01", "2024-03-31")
    assert partition_bounds(settings, "2017-08-01...2017-08-02") == ("2017-08-01", "2017-08-02")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    this_month = yesterday.strftime("%Y-%m")
    assert partition_bounds(settings, this_month)[1] == yesterday.isoformat()  # to date
    with pytest.raises(CliError, match="before the first partition .*PORTFOLIO_PIPELINE_START"):
        partition_bounds(settings, "2017-07-31...2017-08-20")
    with pytest.raises(CliError, match="after yesterday"):
        partition_bounds(settings, f"2024-01-01...{yesterday + timedelta(days=1)}")
    with pytest.raises(CliError, match="not a YYYY-MM-DD day or a YYYY-MM month"):
        partition_bounds(settings, "2024-1")


def test_materialize_replaces_the_months_holding_the_days(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("PORTFOLIO_PIPELINE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("PORTFOLIO_PIPELINE_SYMBOLS", "BTCUSDT")
    argv = ["materialize", "--select", "raw_ohlcv", "--partition", "2024-01-30...2024-02-02"]
    for _ in range(2):  # again: replaced, not appended
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "days 2024-01-30...2024-02-02: monthly partitions 2024-01...2024-02" in out
        with warehouse.connection(tmp_path / "warehouse.duckdb", read_only=True) as con:
            stored = con.execute(
                "select count(*), min(date), max(date) from market.raw_ohlcv"
            ).fetchone()
        assert stored == (31 + 29, date(2024, 1, 1), date(2024, 2, 29))
