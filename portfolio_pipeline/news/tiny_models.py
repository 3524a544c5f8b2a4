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
    from transformers import GenerationConfig


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


def _save_fast_tokenizer(
    tokenizer: Tokenizer, directory: Path, model_max_length: int, **special: str
) -> None:
    """``tokenizer`` as a transformers fast tokenizer with ``special`` tokens in ``directory``."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model_max_length, **special
    )
    fast.save_pretrained(directory)


def _sentence_tokenizer(corpus: Sequence[str], vocab_size: int, wrap: bool) -> Tokenizer:
    """A WordPiece tokenizer with ``<pad> <s> </s> <unk>``; ``wrap``: texts become
    ``<s> text </s>`` (a seq2seq encoder's input), else they are left bare (a causal LM's)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(
        list(corpus),
        trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<unk>"]
        ),
    )
    if wrap:
        tokenizer.post_processor = TemplateProcessing(
            single="<s> $A </s>",
            special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("<s>", "</s>")],
        )
    return tokenizer


def _special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """The ids of ``<pad> <s> </s>`` (trained in as special tokens, so always present)."""
    ids = {t: tokenizer.token_to_id(t) for t in ("<pad>", "<s>", "</s>")}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"tokenizer lacks the special tokens {missing}")
    return {t: int(i) for t, i in ids.items() if i is not None}


def _greedy_generation(ids: dict[str, int], **settings: int) -> GenerationConfig:
    """Greedy decoding with the tokenizer's ``<pad> <s> </s>`` ids."""
    from transformers import GenerationConfig

    return GenerationConfig(
        do_sample=False,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        **settings,
    )


def build_untrained_summarizer(
    directory: str | Path,
    corpus: Sequence[str],
    *,
    vocab_size: int = 800,
    seed: int = 0,
    max_summary_tokens: int = 24,
) -> Path:
    """Save a tiny, UNTRAINED BART summarizer + tokenizer to ``directory``.

    For offline tests and benchmarks of the ``summarization`` path (no download). Random
    weights: its summaries are word salad; what it proves is that the real loading,
    batching, truncation and generation code runs. Inputs are truncated at 128 tokens.

    Returns
    -------
    pathlib.Path
        ``directory``, loadable with
        :func:`~portfolio_pipeline.news.summaries.load_summarizer`.
    """
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _sentence_tokenizer(corpus, vocab_size, wrap=True)
    _save_fast_tokenizer(
        tokenizer, directory, 128, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        unk_token="<unk>",
    )  # fmt: skip
    ids = _special_ids(tokenizer)
    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=tokenizer.get_vocab_size(),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        decoder_start_token_id=ids["</s>"],
        forced_eos_token_id=ids["</s>"],
    )
    model = BartForConditionalGeneration(config)
    model.generation_config = _greedy_generation(
        ids,
        max_new_tokens=max_summary_tokens,
        min_new_tokens=4,
        num_beams=1,
        decoder_start_token_id=ids["</s>"],
    )
    model.save_pretrained(directory)
    return directory


def build_untrained_causal_lm(
    directory: str | Path,
    corpus: Sequence[str],
    *,
    vocab_size: int = 800,
    seed: int = 0,
    context_tokens: int = 4096,
) -> Path:
    """Save a tiny, UNTRAINED GPT-2 causal language model + tokenizer to ``directory``.

    For offline tests and benchmarks of the ``text-generation`` path (no download): random
    weights, so what it writes is word salad that the brief's number check must catch or let
    through on its merits. ``context_tokens`` positions, so a whole brief prompt fits.

    Returns
    -------
    pathlib.Path
        ``directory``, loadable with
        :func:`~portfolio_pipeline.recommendations.brief_writer.load_brief_writer`.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _sentence_tokenizer(corpus, vocab_size, wrap=False)
    _save_fast_tokenizer(
        tokenizer, directory, context_tokens, pad_token="<pad>", bos_token="<s>",
        eos_token="</s>", unk_token="<unk>",
    )  # fmt: skip
    ids = _special_ids(tokenizer)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=tokenizer.get_vocab_size(),
        n_positions=context_tokens,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
    )
    model = GPT2LMHeadModel(config)
    model.generation_config = _greedy_generation(ids)
    model.save_pretrained(directory)
    return directory
