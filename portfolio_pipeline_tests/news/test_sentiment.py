"""News sentiment: transformer path (tiny local model), lexicon fallback, daily tables."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from portfolio_pipeline.news.sentiment import (
    MARKET_SYMBOL,
    LexiconSentimentScorer,
    SentimentInputError,
    TransformerSentimentScorer,
    build_untrained_classifier,
    daily_sentiment,
    labelled_accuracy,
    load_sentiment_scorer,
    news_digest,
    predicted_labels,
    score_news,
)
from portfolio_pipeline.settings import SAMPLE_SYMBOLS

LABELLED_PATH = Path(__file__).resolve().parents[1] / "data" / "sentiment_labelled.csv"


@pytest.fixture(scope="module")
def news(sample_news: pl.DataFrame) -> pl.DataFrame:
    """The sample with the id the raw news table carries (here: the row number)."""
    return sample_news.with_row_index("id").with_columns(pl.col("id").cast(pl.String))


@pytest.fixture(scope="module")
def lexicon_sentiment(news: pl.DataFrame) -> pl.DataFrame:
    return score_news(news, LexiconSentimentScorer())


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, sample_news: pl.DataFrame) -> Path:
    corpus = sample_news["title"].head(1000).to_list()
    return build_untrained_classifier(tmp_path_factory.mktemp("tiny-bert"), corpus)


@pytest.fixture(scope="module")
def labelled() -> pl.DataFrame:
    return pl.read_csv(LABELLED_PATH)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------------- transformer path


def test_transformer_path_offline_with_local_tiny_model(tiny_model_dir, news, caplog):
    with caplog.at_level(logging.WARNING):
        scorer = load_sentiment_scorer(str(tiny_model_dir), batch_size=8)
    assert isinstance(scorer, TransformerSentimentScorer)
    assert not caplog.records and scorer.fallback_reason is None
    assert scorer.device in ("cpu", "cuda") and scorer.max_length == 128

    subset = news.head(40)
    table = score_news(subset, scorer)
    assert set(table["model"].unique()) == {scorer.name}
    probabilities = table.select(pl.sum_horizontal("p_positive", "p_neutral", "p_negative"))
    assert probabilities.to_series().to_numpy() == pytest.approx(1.0, abs=1e-6)
    assert table["score"].is_between(-1.0, 1.0).all()

    # The probabilities are the model's own, mapped by label name (not by position).
    text = "Bitcoin rallies. Markets cheer."
    raw = scorer._pipeline([text], top_k=None, truncation=True)[0]
    by_label = {item["label"]: item["score"] for item in raw}
    ours = scorer.score_texts([text]).row(0, named=True)
    assert ours["p_positive"] == pytest.approx(by_label["positive"])
    assert ours["p_negative"] == pytest.approx(by_label["negative"])
    assert ours["p_neutral"] == pytest.approx(by_label["neutral"])
    assert ours["score"] == pytest.approx(by_label["positive"] - by_label["negative"])

    # Long texts are truncated rather than crashing the position embeddings.
    long_text = " ".join(["bitcoin"] * 2000)
    assert scorer.score_texts([long_text, ""]).height == 2


def test_generic_labels_need_a_label_map(tiny_model_dir, tmp_path, caplog):
    generic = tmp_path / "generic"
    shutil.copytree(tiny_model_dir, generic)
    config_path = generic / "config.json"
    config = json.loads(config_path.read_text())
    config["id2label"] = {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    config["label2id"] = {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}
    config_path.write_text(json.dumps(config))

    with caplog.at_level(logging.WARNING):
        fallback = load_sentiment_scorer(str(generic))
    assert isinstance(fallback, LexiconSentimentScorer)
    assert "LABEL_0" in fallback.fallback_reason

    mapped = load_sentiment_scorer(
        str(generic), label_map={"LABEL_0": "negative", "LABEL_1": "neutral", "LABEL_2": "positive"}
    )
    assert isinstance(mapped, TransformerSentimentScorer)
    assert mapped.score_texts(["ETH up"]).height == 1


def test_tiny_untrained_transformer_accuracy_is_recorded(tiny_model_dir, labelled):
    scorer = load_sentiment_scorer(str(tiny_model_dir))
    result = labelled_accuracy(scorer, labelled)
    # Random weights: near chance. Printed for the report, not asserted as a quality bar.
    print(f"tiny untrained transformer accuracy {result.accuracy:.3f} (n={result.n})")
    assert 0.0 <= result.accuracy <= 1.0 and result.n == 60


# --------------------------------------------------------------------------- fallback path


def test_missing_model_falls_back_to_lexicon_with_logged_warning(tmp_path, news, caplog):
    missing = tmp_path / "no-such-model"
    with caplog.at_level(logging.WARNING, logger="portfolio_pipeline.news.sentiment"):
        scorer = load_sentiment_scorer(str(missing))
    assert isinstance(scorer, LexiconSentimentScorer)
    assert scorer.name == "headline-v3"
    assert scorer.fallback_reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no-such-model" in warnings[0].getMessage()
    assert "lexicon" in warnings[0].getMessage()
    table = score_news(news.head(20), scorer)
    assert table["model"].unique().to_list() == ["headline-v3"]


def test_model_name_comes_from_environment(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_SENTIMENT_MODEL", str(tmp_path / "env-model"))
    with caplog.at_level(logging.WARNING):
        scorer = load_sentiment_scorer()
    assert isinstance(scorer, LexiconSentimentScorer)
    assert "env-model" in caplog.text
    caplog.clear()
    monkeypatch.setenv("PORTFOLIO_PIPELINE_SENTIMENT_MODEL", "lexicon")
    with caplog.at_level(logging.WARNING):
        chosen = load_sentiment_scorer()
    assert isinstance(chosen, LexiconSentimentScorer) and chosen.fallback_reason is None
    assert not caplog.records


# -------------------------------------------------------------------------------- lexicon


def test_lexicon_polarity_negation_and_phrases():
    scorer = LexiconSentimentScorer()
    texts = [
        "Bitcoin surges to a new all-time high as ETF approval nears",
        "Exchange hacked, $100M stolen in exploit",
        "Ethereum developers publish the agenda of the next call",
        "Coinbase faces no risks of bankruptcy, says CEO",
        "Crypto winter deepens as lenders freeze withdrawals",
        "Bitcoin price does not crash despite Fed decision",
    ]
    scores = scorer.score_texts(texts)
    labels = predicted_labels(scores).to_list()
    assert labels[:3] == ["positive", "negative", "neutral"]
    assert labels[3] == "positive"  # negated negatives
    assert labels[4] == "negative"
    assert scores["score"][5] > 0 > scorer.score_texts(["Bitcoin price crashes"])["score"][0]
    assert scores.select(
        pl.sum_horizontal("p_positive", "p_neutral", "p_negative")
    ).to_series().to_numpy() == pytest.approx(1.0)
    assert scores["score"].is_between(-1, 1).all()


def test_lexicon_beats_majority_baseline_on_hand_labelled_headlines(labelled):
    assert labelled.height == 60
    assert labelled["label"].value_counts()["count"].to_list() == [20, 20, 20]
    result = labelled_accuracy(LexiconSentimentScorer(), labelled)
    print(f"lexicon accuracy {result.accuracy:.3f} vs majority {result.majority_baseline:.3f}")
    assert result.accuracy > result.majority_baseline


# ----------------------------------------------------------------------------- news tables


def test_every_article_and_every_tagged_pair_has_a_row(news, lexicon_sentiment):
    assert set(lexicon_sentiment.columns) >= {
        "id", "symbol", "published_at", "score", "p_positive", "p_neutral", "p_negative", "model"
    }  # fmt: skip
    market = lexicon_sentiment.filter(pl.col("symbol") == MARKET_SYMBOL)
    assert sorted(market["id"].to_list()) == sorted(news["id"].to_list())
    tagged = (
        news.select("id", pl.col("symbols").alias("symbol")).explode("symbol").drop_nulls().unique()
    )
    per_symbol = lexicon_sentiment.filter(pl.col("symbol") != MARKET_SYMBOL).select("id", "symbol")
    assert_frame_equal(per_symbol.sort("id", "symbol"), tagged.sort("id", "symbol"))
    assert lexicon_sentiment.select(pl.struct("id", "symbol").is_unique().all()).item()
    assert lexicon_sentiment["score"].is_between(-1.0, 1.0).all()
    # The published time travels unchanged.
    joined = lexicon_sentiment.join(news.select("id", "published_at"), on="id", suffix="_raw")
    assert (joined["published_at"] == joined["published_at_raw"]).all()


def test_score_news_rejects_bad_input(news):
    scorer = LexiconSentimentScorer()
    with pytest.raises(SentimentInputError, match=r"lacks required columns \['id'\]"):
        score_news(news.drop("id"), scorer)
    with pytest.raises(SentimentInputError, match="duplicate news ids"):
        score_news(pl.concat([news.head(3), news.head(1)]), scorer)
    with pytest.raises(SentimentInputError, match="time-zone-aware"):
        score_news(
            news.head(3).with_columns(pl.col("published_at").dt.replace_time_zone(None)), scorer
        )
    empty = score_news(news.head(0), scorer)
    assert empty.height == 0 and "score" in empty.columns


def _sentiment_rows(rows: list[tuple[str, str, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "id": pl.String,
            "symbol": pl.String,
            "published_at": pl.Datetime("us", "UTC"),
            "score": pl.Float64,
        },
        orient="row",
    )


def test_daily_sentiment_grid_counts_and_ewm_decay():
    half_life = 2.0
    decay = 0.5 ** (1 / half_life)
    rows = _sentiment_rows(
        [
            ("a", "BTCUSDT", _utc(2022, 1, 3, 0, 0), 0.8),
            ("a", MARKET_SYMBOL, _utc(2022, 1, 3, 0, 0), 0.8),
            ("b", "BTCUSDT", _utc(2022, 1, 3, 23, 59), -0.2),
            ("b", MARKET_SYMBOL, _utc(2022, 1, 3, 23, 59), -0.2),
            ("c", MARKET_SYMBOL, _utc(2022, 1, 6, 12, 0), -0.5),
            ("z", "NOTINUNIVERSE", _utc(2022, 1, 4, 12, 0), 1.0),
        ]
    )
    out = daily_sentiment(
        rows, ["BTCUSDT", "ETHUSDT"], date(2022, 1, 1), date(2022, 1, 10), half_life
    )
    assert out.height == 3 * 10
    assert set(out["symbol"].unique()) == {"BTCUSDT", "ETHUSDT", MARKET_SYMBOL}
    btc = out.filter(pl.col("symbol") == "BTCUSDT").sort("date")
    assert btc["news_count"].to_list() == [0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
    assert btc["sentiment"].to_list()[:3] == [None, None, pytest.approx(0.3)]
    assert btc["sentiment"].null_count() == 9
    expected_ewm = [0.0, 0.0] + [(1 - decay) * 0.3 * decay**k for k in range(8)]
    assert btc["sentiment_ewm"].to_list() == pytest.approx(expected_ewm)
    eth = out.filter(pl.col("symbol") == "ETHUSDT")
    assert eth["news_count"].sum() == 0 and eth["sentiment_ewm"].to_list() == [0.0] * 10
    market = out.filter(pl.col("symbol") == MARKET_SYMBOL).sort("date")
    assert market["news_count"].to_list() == [0, 0, 2, 0, 0, 1, 0, 0, 0, 0]
    market_day_6 = (1 - decay) * 0.3 * decay**3 + (1 - decay) * -0.5
    assert market["sentiment_ewm"][5] == pytest.approx(market_day_6)
    # market columns are the MARKET row of the same date, on every symbol's row
    assert eth["market_sentiment_ewm"].to_list() == pytest.approx(market["sentiment_ewm"].to_list())
    assert eth["market_sentiment"][5] == pytest.approx(-0.5)


def test_daily_sentiment_converges_and_uses_news_before_start():
    # 50 daily articles of 0.6 from 2022-01-01 to 2022-02-19, then silence.
    rows = _sentiment_rows(
        [(f"n{k}", "ETHUSDT", _utc(2022, 1, 1, 9, 0) + timedelta(days=k), 0.6) for k in range(50)]
    )
    out = daily_sentiment(rows, ["ETHUSDT"], date(2022, 2, 20), date(2022, 3, 1), 3.0)
    eth = out.filter(pl.col("symbol") == "ETHUSDT").sort("date")
    decay = 0.5 ** (1 / 3.0)
    assert eth["date"].to_list()[0] == date(2022, 2, 20)  # no row before start
    assert eth["news_count"].sum() == 0
    # Earlier news is remembered (it was known), then decays toward 0 without news.
    steady = 0.6 * (1 - decay**50)
    expected = [steady * decay ** (k + 1) for k in range(10)]
    assert eth["sentiment_ewm"].to_list() == pytest.approx(expected)


def test_daily_sentiment_point_in_time(lexicon_sentiment):
    start, end = date(2021, 10, 1), date(2022, 7, 31)
    full = daily_sentiment(lexicon_sentiment, SAMPLE_SYMBOLS, start, end)
    n_days = (end - start).days + 1
    assert full.height == (len(SAMPLE_SYMBOLS) + 1) * n_days
    assert full.select(pl.struct("symbol", "date").is_unique().all()).item()
    assert full["news_count"].sum() == lexicon_sentiment.height
    assert (full.filter(pl.col("news_count") == 0)["sentiment"].is_null()).all()
    assert full["sentiment"].drop_nulls().is_between(-1, 1).all()
    assert full["sentiment_ewm"].is_between(-1, 1).all()

    # No row carries an article before the UTC day it was published.
    first_use = full.filter(pl.col("news_count") > 0).group_by("symbol").agg(pl.col("date").min())
    first_published = lexicon_sentiment.group_by("symbol").agg(
        pl.col("published_at").min().dt.date().alias("published")
    )
    check = first_use.join(first_published, on="symbol")
    assert (check["date"] == check["published"]).all()
    assert full.filter(pl.col("date") < date(2021, 10, 12))["sentiment_ewm"].to_list() == [0.0] * (
        (len(SAMPLE_SYMBOLS) + 1) * 11
    )

    # Only news published by the end of UTC day d may change rows dated <= d.
    for cutoff in (date(2021, 12, 31), date(2022, 5, 10)):
        known = lexicon_sentiment.filter(pl.col("published_at").dt.date() <= cutoff)
        partial = daily_sentiment(known, SAMPLE_SYMBOLS, start, end)
        before = pl.col("date") <= cutoff
        assert_frame_equal(partial.filter(before), full.filter(before))


def test_published_time_zone_is_converted_to_utc_day():
    late_new_york = pl.DataFrame(
        {
            "id": ["ny"],
            "symbol": ["BTCUSDT"],
            "published_at": [datetime(2022, 1, 1, 23, 30)],
            "score": [0.5],
        }
    ).with_columns(pl.col("published_at").dt.replace_time_zone("America/New_York"))
    out = daily_sentiment(late_new_york, ["BTCUSDT"], date(2022, 1, 1), date(2022, 1, 3))
    btc = out.filter(pl.col("symbol") == "BTCUSDT").sort("date")
    assert btc["news_count"].to_list() == [0, 1, 0]  # 04:30 UTC on 2022-01-02


def test_news_digest_top_headlines(news, lexicon_sentiment):
    digest = news_digest(news, lexicon_sentiment, top_n=3)
    assert digest.group_by("symbol", "date").len()["len"].max() <= 3
    assert digest["title"].null_count() == 0
    btc_day = digest.filter((pl.col("symbol") == "BTCUSDT") & (pl.col("date") == date(2022, 5, 10)))
    assert btc_day["rank"].to_list() == [1, 2, 3]
    magnitudes = btc_day["score"].abs().to_list()
    assert magnitudes == sorted(magnitudes, reverse=True)
    day_scores = lexicon_sentiment.filter(
        (pl.col("symbol") == "BTCUSDT") & (pl.col("published_at").dt.date() == date(2022, 5, 10))
    )["score"]
    assert magnitudes[0] == pytest.approx(day_scores.abs().max())
    with pytest.raises(ValueError, match="top_n"):
        news_digest(news, lexicon_sentiment, top_n=0)


def test_unreachable_hub_falls_back_without_waiting(monkeypatch, tmp_path, caplog):
    import socket
    import time

    from portfolio_pipeline.news import sentiment

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # nothing cached

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    started = time.perf_counter()
    scorer = sentiment.load_sentiment_scorer("some-org/some-finbert")
    assert time.perf_counter() - started < 5
    assert scorer.name == "headline-v3"
    assert "unreachable" in scorer.fallback_reason


def test_equity_news_counts_from_the_first_session_that_can_act_on_it():
    from datetime import time

    from portfolio_pipeline.news.sentiment import NewsTiming

    # NYSE sessions around Presidents' Day 2022 (Monday 2022-02-21 closed).
    sessions = (date(2022, 2, 17), date(2022, 2, 18), date(2022, 2, 22), date(2022, 2, 23))
    timing = NewsTiming(time(16, 0), "America/New_York", sessions)
    local = [
        datetime(2022, 2, 17, 9, 0),  # Thursday morning: that session
        datetime(2022, 2, 18, 15, 59),  # Friday before the close: Friday
        datetime(2022, 2, 18, 16, 0),  # Friday at the close: next session, Tuesday
        datetime(2022, 2, 19, 12, 0),  # Saturday: Tuesday
        datetime(2022, 2, 21, 10, 0),  # the holiday: Tuesday
        datetime(2022, 2, 23, 17, 0),  # after the last known session: not usable yet
    ]
    frame = pl.DataFrame({"published_at": local}).with_columns(
        pl.col("published_at").dt.replace_time_zone("America/New_York")
    )
    out = timing.with_usable_date(frame)
    assert out["date"].to_list() == [
        date(2022, 2, 17), date(2022, 2, 18), date(2022, 2, 22), date(2022, 2, 22),
        date(2022, 2, 22), None,
    ]  # fmt: skip
    # crypto keeps the UTC day: Friday 16:00 New York is 21:00 UTC the same day
    assert NewsTiming().with_usable_date(frame)["date"][2] == date(2022, 2, 18)
    # and the daily table counts them on those sessions
    scored = frame.with_columns(
        pl.lit("AAPL").alias("symbol"), pl.lit(0.5).alias("score"), pl.lit("x").alias("id")
    )
    daily = daily_sentiment(
        scored, ["AAPL"], date(2022, 2, 17), date(2022, 2, 23), 3.0, timing=timing
    ).filter(pl.col("symbol") == "AAPL")
    counts = dict(zip(daily["date"].to_list(), daily["news_count"].to_list(), strict=True))
    assert counts[date(2022, 2, 22)] == 3 and counts[date(2022, 2, 19)] == 0
    assert sum(counts.values()) == 5


def test_daily_sentiment_is_bit_identical_whatever_the_input_order(lexicon_sentiment):
    """The warehouse returns rows in no set order; the fold cache hashes these values, so the
    same articles must give the same bits (a plain mean sums in input order)."""
    start, end = date(2021, 10, 1), date(2022, 7, 31)
    runs = [
        daily_sentiment(
            lexicon_sentiment.sample(fraction=1.0, shuffle=True, seed=seed),
            SAMPLE_SYMBOLS,
            start,
            end,
        )
        for seed in range(4)
    ]
    for run in runs[1:]:
        assert run.equals(runs[0])
