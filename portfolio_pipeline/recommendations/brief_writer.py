"""A local text-generation model (e.g. Llama-3-8B-Instruct) that writes the market brief.

Pure (no dagster); ``torch``/``transformers`` are imported only when a writer is built.
:func:`load_brief_writer` returns the writer, or None with the reason (no model set, not
reachable, failed to load), and the template writes the brief instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from portfolio_pipeline.news.loading import hub_unreachable_reason

logger = logging.getLogger(__name__)

LLM_MODEL_ENV = "PORTFOLIO_PIPELINE_LLM_MODEL"


class GenerativeBriefWriter:
    """A Hugging Face causal LM behind the ``text-generation`` pipeline, greedy decoding.

    The prompt goes through the tokenizer's chat template when it has one (instruct
    models), as one user message. A prompt longer than the model's context (less the new
    tokens) is refused, not truncated: a truncated prompt would lose facts.

    Parameters
    ----------
    model_name_or_path : str
        Hub name or a local directory with model + tokenizer.
    max_new_tokens : int
        Length of the brief, in tokens.
    device : str, optional
        ``"cuda"`` or ``"cpu"``; default: CUDA when available.
    """

    def __init__(
        self, model_name_or_path: str, max_new_tokens: int = 400, device: str | None = None
    ) -> None:
        import torch
        from transformers import pipeline

        self.model_name_or_path = str(model_name_or_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_new_tokens = max_new_tokens
        self._pipeline: Any = pipeline(
            "text-generation",
            model=self.model_name_or_path,
            tokenizer=self.model_name_or_path,
            device=self.device,
            dtype=torch.bfloat16 if self.device == "cuda" else torch.float32,
        )
        config = self._pipeline.model.config
        self.context_tokens = int(
            getattr(config, "max_position_embeddings", None)
            or getattr(config, "n_positions", None)
            or 2048
        )
        path = Path(self.model_name_or_path)
        self.name = path.name if path.is_dir() else self.model_name_or_path

    def generate(self, prompt: str) -> str:
        tokenizer = self._pipeline.tokenizer
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        n_prompt = len(tokenizer(prompt)["input_ids"])
        if n_prompt + self.max_new_tokens > self.context_tokens:
            raise ValueError(
                f"prompt of {n_prompt} tokens + {self.max_new_tokens} new exceeds the "
                f"model's {self.context_tokens}-token context"
            )
        output = self._pipeline(
            prompt,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            return_full_text=False,
        )
        return str(output[0]["generated_text"])


def load_brief_writer(
    model_name_or_path: str | None = None, *, max_new_tokens: int = 400, device: str | None = None
) -> tuple[GenerativeBriefWriter | None, str | None]:
    """(writer, None), or (None, why not): no model set, or it cannot load (logged).

    ``model_name_or_path``: default ``$PORTFOLIO_PIPELINE_LLM_MODEL``; blank = no model.
    """
    if model_name_or_path is None:
        model_name_or_path = os.environ.get(LLM_MODEL_ENV, "").strip()
    if not model_name_or_path:
        return None, f"no brief model set ({LLM_MODEL_ENV})"
    reason = hub_unreachable_reason(model_name_or_path)
    if reason is None:
        try:
            return GenerativeBriefWriter(
                model_name_or_path, max_new_tokens=max_new_tokens, device=device
            ), None
        except Exception as exc:  # any load failure means: the template, with the reason
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    logger.warning(
        "brief model %r unavailable (%s); using the template", model_name_or_path, reason
    )
    return None, f"model {model_name_or_path} unavailable: {reason}"
