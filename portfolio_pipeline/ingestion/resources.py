"""Interchangeable data sources as resources: ``sample`` (default, offline), live APIs, files."""

from __future__ import annotations

import os

import dagster as dg

from portfolio_pipeline.core.sources.base import NewsSource, OhlcvSource


class OhlcvSourceResource(dg.ConfigurableResource):
    """Where daily candles come from.

    ``kind``: ``sample`` (the shipped Binance sample, offline), ``binance`` (public REST API,
    no key) or ``files`` (CSV/Parquet under ``files_dir/ohlcv``). ``symbols`` is the universe.
    """

    kind: str = "sample"
    symbols: list[str]
    sample_path: str
    files_dir: str
    binance_base_url: str = "https://api.binance.com"

    def client(self) -> OhlcvSource:
        if self.kind == "sample":
            from portfolio_pipeline.core.sources.sample import SampleOhlcvSource

            return SampleOhlcvSource(self.sample_path)
        if self.kind == "files":
            from portfolio_pipeline.core.sources.files import FilesOhlcvSource

            return FilesOhlcvSource(self.files_dir)
        if self.kind == "binance":
            from portfolio_pipeline.core.sources.binance import BinanceOhlcvSource

            return BinanceOhlcvSource(base_url=self.binance_base_url)
        raise dg.Failure(f"unknown OHLCV source kind {self.kind!r}: use sample, binance or files")

    @property
    def is_live(self) -> bool:
        return self.kind == "binance"


class NewsSourceResource(dg.ConfigurableResource):
    """Where news comes from: ``sample`` (default), ``alphavantage`` (key from
    ``ALPHAVANTAGE_API_KEY``) or ``files`` (CSV/Parquet under ``files_dir/news``)."""

    kind: str = "sample"
    sample_path: str
    files_dir: str
    symbols: list[str] = []
    alphavantage_tickers: list[str] = []

    def client(self) -> NewsSource:
        if self.kind == "sample":
            from portfolio_pipeline.core.sources.sample import SampleNewsSource

            return SampleNewsSource(self.sample_path)
        if self.kind == "files":
            from portfolio_pipeline.core.sources.files import FilesNewsSource

            return FilesNewsSource(self.files_dir)
        if self.kind == "alphavantage":
            from portfolio_pipeline.core.sources.alphavantage import AlphaVantageNewsSource

            # One request per ticker (Alpha Vantage ANDs a ticker list); the default five
            # majors fit the free tier's 25 requests a day. Configure more explicitly.
            kwargs = (
                {"tickers": tuple(self.alphavantage_tickers)} if self.alphavantage_tickers else {}
            )
            return AlphaVantageNewsSource(
                api_key=os.environ.get("ALPHAVANTAGE_API_KEY"),
                universe=tuple(self.symbols) or None,
                **kwargs,
            )
        raise dg.Failure(
            f"unknown news source kind {self.kind!r}: use sample, alphavantage or files"
        )

    @property
    def is_live(self) -> bool:
        return self.kind == "alphavantage"
