"""portfolio-pipeline: Dagster assets from OHLCV and news to rebalancing recommendations.

``portfolio_pipeline.defs`` is the project's ``dagster.Definitions`` (so ``dagster ... -m
portfolio_pipeline`` works). It is loaded lazily: importing the pure core
(``portfolio_pipeline.core``) from a notebook does not import dagster.
"""


def __getattr__(name: str):
    if name == "defs":
        from portfolio_pipeline.definitions import defs

        return defs
    raise AttributeError(f"module 'portfolio_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
