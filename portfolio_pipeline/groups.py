"""Dagster asset group names, written once: one group per stage folder, so the group a user
sees in the UI names the folder that holds the asset. The definitions assign them per module
when the assets are loaded, and the jobs select by them."""

from __future__ import annotations

MARKET = "market"
NEWS = "news"
FORECASTING = "forecasting"
PORTFOLIO = "portfolio"
POLICIES = "policies"
RECOMMENDATIONS = "recommendations"
