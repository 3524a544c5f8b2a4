"""Tiny, untrained transformers built locally, for offline tests and benchmarks of the model
paths (no weights can be downloaded there).

Pure (no dagster); ``torch``, ``tokenizers`` and ``transformers`` are imported inside the
builders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def build_untrained_classifier(
    directory: str | Path,
    corpus: Sequence[str],
    *,
    vocab_size: int = 600,
    seed: int = 0,
) -> Path:
    """Save a tiny, UNTRAINED BERT sentiment classifier + WordPiece tokenizer to ``directory``.

    For offline tests and benchmarks of the transformer path (no download): labels
    ``{0: positive, 1: negative, 2: neutral}`` like FinBERT, random weights, so its
    predictions are near chance. The tokenizer is trained on ``corpus``.

    Returns
    -------
    pathlib.Path
        ``directory``, loadable with
        :func:`~portfolio_pipeline.news.loading.load_sentiment_scorer`.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _wordpiece_tokenizer(corpus, vocab_size)
    _save_bert_tokenizer(tokenizer, directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        # three labels: the count follows from id2label
        id2label={0: "positive", 1: "negative", 2: "neutral"},
        label2id={"positive": 0, "negative": 1, "neutral": 2},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


_BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _wordpiece_tokenizer(corpus: Sequence[str], vocab_size: int) -> Tokenizer:
    """A lower-casing BERT WordPiece tokenizer trained on ``corpus`` ([CLS] text [SEP])."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        list(corpus),
        trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_BERT_SPECIAL_TOKENS),
    )
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    return tokenizer


def _save_bert_tokenizer(tokenizer: Tokenizer, directory: Path) -> None:
    """``tokenizer`` as a transformers fast tokenizer (128 tokens at most) in ``directory``."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    fast.save_pretrained(directory)
