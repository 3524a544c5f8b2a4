"""The sentiment model: a transformers model by hub name or local path, with a lexicon
fallback when it cannot be loaded."""

import dagster as dg


class SentimentModelResource(dg.ConfigurableResource):
    """``model``: hub name or local path of a text-classification model (set from
    ``Settings.sentiment_model`` by ``build_resources``; blank = ``ProsusAI/finbert``);
    ``lexicon`` uses the lexicon scorer on purpose. ``device``: ``auto`` (cuda when available), ``cpu`` or ``cuda``."""

    model: str = ""
    batch_size: int = 32
    device: str = "auto"
    half_life_days: float = 3.0

    def scorer(self):
        from portfolio_pipeline.core.sentiment import DEFAULT_SENTIMENT_MODEL, load_sentiment_scorer

        name = self.model or DEFAULT_SENTIMENT_MODEL
        device = None if self.device == "auto" else self.device
        return load_sentiment_scorer(name, batch_size=self.batch_size, device=device)
