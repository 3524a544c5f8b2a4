"""Interchangeable data sources as resources: ``sample`` (default, offline), live APIs, files."""

from __future__ import annotations

import dagster as dg

from portfolio_pipeline.market.sources.base import OhlcvSource


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
            from portfolio_pipeline.market.sources.sample import SampleOhlcvSource

            return SampleOhlcvSource(self.sample_path)
        if self.kind == "files":
            from portfolio_pipeline.market.sources.files import FilesOhlcvSource

            return FilesOhlcvSource(self.files_dir)
        if self.kind == "binance":
            from portfolio_pipeline.market.sources.binance import BinanceOhlcvSource

            return BinanceOhlcvSource(base_url=self.binance_base_url)
        raise dg.Failure(f"unknown OHLCV source kind {self.kind!r}: use sample, binance or files")

    @property
    def is_live(self) -> bool:
        return self.kind == "binance"
