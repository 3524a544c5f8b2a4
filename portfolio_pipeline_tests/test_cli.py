from datetime import date

import polars as pl

from portfolio_pipeline.cli import main
from portfolio_pipeline.core import warehouse


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
