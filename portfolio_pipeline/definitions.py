"""The one place that assembles the Dagster definitions.

Loading this module must stay fast: it imports no torch, transformers, ray or
great_expectations (those load inside the assets that use them).
"""

from __future__ import annotations

import dagster as dg

from portfolio_pipeline import groups
from portfolio_pipeline.forecasting import assets as forecasting_assets
from portfolio_pipeline.market import assets as market_assets
from portfolio_pipeline.market import checks as market_checks
from portfolio_pipeline.market.partitions import with_history_partitions
from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.news import assets as news_assets
from portfolio_pipeline.news import checks as news_checks
from portfolio_pipeline.news.resources import (
    NewsSourceResource,
    SentimentModelResource,
    SummaryModelResource,
)
from portfolio_pipeline.operations.definitions import build_operations
from portfolio_pipeline.policies import assets as policy_assets
from portfolio_pipeline.portfolio import assets as portfolio_assets
from portfolio_pipeline.portfolio import checks as portfolio_checks
from portfolio_pipeline.recommendations import assets as recommendation_assets
from portfolio_pipeline.recommendations import brief_assets as recommendation_brief_assets
from portfolio_pipeline.recommendations import replay_assets as recommendation_replay_assets
from portfolio_pipeline.recommendations.resources import BriefModelResource
from portfolio_pipeline.settings import Settings, load_settings
from portfolio_pipeline.sqlite_tuning import install as install_sqlite_tuning
from portfolio_pipeline.warehouse.resources import WarehouseResource

install_sqlite_tuning()


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource, built from one :class:`Settings`: the assets read the settings through
    the ``settings`` resource, never from the environment, so ``build_definitions(settings)``
    decides everything."""
    return {
        "settings": settings,
        "warehouse_resource": WarehouseResource(path=str(settings.warehouse_path)),
        "ohlcv_source": OhlcvSourceResource(
            kind=settings.ohlcv_source,
            symbols=list(settings.symbols),
            sample_path=str(settings.sample_ohlcv_path),
            files_dir=str(settings.files_dir),
        ),
        "sentiment_model": SentimentModelResource(model=settings.sentiment_model or ""),
        "summary_model": SummaryModelResource(model=settings.summary_model or ""),
        "brief_model": BriefModelResource(model=settings.llm_model or ""),
        "news_source": NewsSourceResource(
            kind=settings.news_source,
            symbols=list(settings.symbols),
            sample_path=str(settings.sample_news_path),
            files_dir=str(settings.files_dir),
        ),
    }


ASSET_MODULES_BY_GROUP = (
    (groups.MARKET, (market_assets,)),
    (groups.NEWS, (news_assets,)),
    (groups.FORECASTING, (forecasting_assets,)),
    (groups.PORTFOLIO, (portfolio_assets,)),
    (groups.POLICIES, (policy_assets,)),
    (
        groups.RECOMMENDATIONS,
        (recommendation_assets, recommendation_replay_assets, recommendation_brief_assets),
    ),
)


def load_grouped_assets() -> list:
    """Every asset once, its group assigned here per module (the jobs select by group).

    A module that imports an upstream asset (features import the raw assets) would load it
    again under its own group: the first module that defines a key keeps it.
    """
    loaded, seen = [], set()
    for group, modules in ASSET_MODULES_BY_GROUP:
        for asset in dg.load_assets_from_modules(list(modules), group_name=group):
            keys = set(asset.keys) if hasattr(asset, "keys") else {asset.key}
            if keys & seen:
                continue
            seen |= keys
            loaded.append(asset)
    return loaded


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    assets = with_history_partitions(load_grouped_assets(), settings.start_date)
    checks = dg.load_asset_checks_from_modules([market_checks, news_checks, portfolio_checks])
    operations = build_operations(assets, settings)
    return dg.Definitions(
        assets=assets,
        asset_checks=[*checks, *operations.asset_checks],
        jobs=operations.jobs,
        schedules=operations.schedules,
        sensors=operations.sensors,
        resources=build_resources(settings),
        # DuckDB allows one writer per file and steps are short: run them in one process.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
