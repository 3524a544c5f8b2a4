"""The market brief's text-generation model: a hub name or a local directory, or none (the
template writes the brief)."""

import dagster as dg


class BriefModelResource(dg.ConfigurableResource):
    """``model``: hub name or local path of a text-generation model (set from
    ``Settings.llm_model``, ``PORTFOLIO_PIPELINE_LLM_MODEL``); blank = the template.
    ``device``: ``auto`` (cuda when available), ``cpu`` or ``cuda``."""

    model: str = ""
    max_new_tokens: int = 400
    device: str = "auto"

    def writer(self):
        """(writer, None) or (None, why the template writes the brief)."""
        from portfolio_pipeline.recommendations.brief_writer import load_brief_writer

        device = None if self.device == "auto" else self.device
        return load_brief_writer(self.model, max_new_tokens=self.max_new_tokens, device=device)
