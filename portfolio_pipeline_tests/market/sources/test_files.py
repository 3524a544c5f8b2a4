from datetime import date

import polars as pl
import pytest

from portfolio_pipeline.market.sources.base import SourceError
from portfolio_pipeline.market.sources.files import FilesNewsSource, FilesOhlcvSource
from portfolio_pipeline.market.sources.sample import SampleNewsSource, SampleOhlcvSource
from portfolio_pipeline_tests.conftest import DATA_DIR

CSV_HEADER = "date,open,high,low,close,volume\n"


def _write(folder, name, text):
    (folder / "ohlcv").mkdir(parents=True, exist_ok=True)
    (folder / "ohlcv" / name).write_text(text)


def test_sample_source_known_values():
    frame = SampleOhlcvSource(DATA_DIR / "crypto_ohlcv_daily.parquet").fetch(
        ["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 1)
    )
    assert frame["close"].to_list() == [44179.55]
    news = SampleNewsSource(DATA_DIR / "crypto_news.parquet").fetch(
        date(2017, 1, 1), date(2030, 1, 1)
    )
    assert news.height == 7465 and news["id"].n_unique() == 7465
    assert str(news.schema["published_at"].time_zone) == "UTC"


def test_files_source_reads_equities_by_file_name(tmp_path):
    _write(tmp_path, "aapl.csv", CSV_HEADER + "2024-01-02,187.15,188.44,183.89,185.64,82488700\n")
    frame = FilesOhlcvSource(tmp_path).fetch([], date(2024, 1, 1), date(2024, 1, 31))
    assert frame["symbol"].to_list() == ["AAPL"] and frame["close"].to_list() == [185.64]
    assert frame["source"].to_list() == ["files:aapl.csv"]


def test_non_numeric_price_names_file_column_symbol_date(tmp_path):
    _write(tmp_path, "MSFT.csv", CSV_HEADER + "2024-01-02,370.0,abc,366.5,370.6,25258600\n")
    with pytest.raises(SourceError) as err:
        FilesOhlcvSource(tmp_path).fetch([], date(2024, 1, 1), date(2024, 1, 31))
    message = str(err.value)
    for part in ("MSFT.csv", "'high'", "MSFT 2024-01-02", "numeric_and_date_values"):
        assert part in message


def test_missing_column_names_it(tmp_path):
    _write(tmp_path, "X.csv", "date,open,high,low,volume\n2024-01-02,1,2,0.5,10\n")
    with pytest.raises(
        SourceError, match=r"X.csv: rule 'required_columns': missing column\(s\) close"
    ):
        FilesOhlcvSource(tmp_path).fetch([], date(2024, 1, 1), date(2024, 1, 31))


def test_files_news(tmp_path):
    (tmp_path / "news").mkdir()
    pl.DataFrame(
        {
            "published_at": ["2024-03-01T10:00:00", "2024-03-02T23:59:00+00:00"],
            "title": ["Bitcoin rallies", "Ether slips"],
            "symbols": ["BTCUSDT", "ETHUSDT; BTCUSDT"],
        }
    ).write_csv(tmp_path / "news" / "n.csv")
    news = FilesNewsSource(tmp_path).fetch(date(2024, 3, 2), date(2024, 3, 2))
    assert news["title"].to_list() == ["Ether slips"]
    assert news["symbols"].to_list() == [["ETHUSDT", "BTCUSDT"]]
