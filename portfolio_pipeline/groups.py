"""Dagster asset group names, written once: the definitions assign them per module when the
assets are loaded, and the jobs select by them."""

from __future__ import annotations

INGESTION = "ingestion"
FEATURES = "features"
FORECASTING = "forecasting"
POLICIES = "policies"
PORTFOLIO = "portfolio"
