"""The sentiment model: a transformers model by hub name or local path, with a lexicon
fallback when it cannot be loaded."""

import os

import dagster as dg

from portfolio_pipeline.market.sources.base import NewsSource


class SentimentModelResource(dg.ConfigurableResource):
    """``model``: hub name or local path of a text-classification model (set from
    ``Settings.sentiment_model`` by ``build_resources``; blank = ``ProsusAI/finbert``);
    ``lexicon`` uses the lexicon scorer on purpose. ``device``: ``auto`` (cuda when available), ``cpu`` or ``cuda``."""

    model: str = ""
    batch_size: int = 32
    device: str = "auto"
    half_life_days: float = 3.0

    def scorer(self):
        from portfolio_pipeline.news.loading import load_sentiment_scorer
        from portfolio_pipeline.news.transformer_scorer import DEFAULT_SENTIMENT_MODEL

        name = self.model or DEFAULT_SENTIMENT_MODEL
        device = None if self.device == "auto" else self.device
        return load_sentiment_scorer(name, batch_size=self.batch_size, device=device)


class SummaryModelResource(dg.ConfigurableResource):
    """``model``: hub name or local path of a seq2seq summarization model (set from
    ``Settings.summary_model``); blank or ``extractive`` = extractive summaries. ``device``:
    ``auto`` (cuda when available), ``cpu`` or ``cuda``."""

    model: str = ""
    batch_size: int = 8
    device: str = "auto"

    def summarizer(self):
        from portfolio_pipeline.news.summaries import load_summarizer

        device = None if self.device == "auto" else self.device
        return load_summarizer(self.model, batch_size=self.batch_size, device=device)


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
            from portfolio_pipeline.market.sources.sample import SampleNewsSource

            return SampleNewsSource(self.sample_path)
        if self.kind == "files":
            from portfolio_pipeline.market.sources.files import FilesNewsSource

            return FilesNewsSource(self.files_dir)
        if self.kind == "alphavantage":
            from portfolio_pipeline.market.sources.alphavantage import AlphaVantageNewsSource

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
