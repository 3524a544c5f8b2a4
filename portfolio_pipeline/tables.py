"""Every warehouse table name, written once (``schema.table``; SPEC.md lists their columns).

Pure: the core, the Dagster layer, the CLI and notebooks import these names instead of
spelling them.
"""

from __future__ import annotations

# market and news
RAW_OHLCV = "market.raw_ohlcv"
RAW_NEWS = "news.raw_news"

# features
MARKET_FEATURES = "features.market_features"
NEWS_SENTIMENT = "features.news_sentiment"
DAILY_SENTIMENT = "features.daily_sentiment"
NEWS_DIGEST = "features.news_digest"
NEWS_SUMMARIES = "features.news_summaries"

# forecasts
FORECAST_BACKTEST = "ml.forecast_backtest"
FORECAST_FOLDS = "ml.forecast_folds"
FORECAST_EVALUATION = "ml.forecast_evaluation"
RETURN_FORECASTS = "ml.return_forecasts"
VOLATILITY_FORECASTS = "ml.volatility_forecasts"
VOLATILITY_EVALUATION = "ml.volatility_evaluation"
MODEL_REGISTRY = "ml.model_registry"

# policies
POLICY_REGISTRY = "ml.policy_registry"
POLICY_SEARCH_TRIALS = "ml.policy_search_trials"
POLICY_EVALUATION = "ml.policy_evaluation"
POLICY_WEIGHTS = "ml.policy_weights"

# portfolio
HOLDINGS = "portfolio.holdings"
TARGET_WEIGHTS = "portfolio.target_weights"
BACKTEST_EQUITY = "portfolio.backtest_equity"
BACKTEST_METRICS = "portfolio.backtest_metrics"
BACKTEST_SENSITIVITY = "portfolio.backtest_sensitivity"
STRATEGY_VALIDATION = "portfolio.strategy_validation"
RECOMMENDATIONS = "portfolio.recommendations"
RECOMMENDATION_BACKTEST = "portfolio.recommendation_backtest"
RECOMMENDATION_BACKTEST_METRICS = "portfolio.recommendation_backtest_metrics"
GATE_VALIDATION = "portfolio.gate_validation"
PROCESS_SELECTION = "portfolio.process_selection"
RECOMMENDATION_OUTCOMES = "portfolio.recommendation_outcomes"
RISK_METRICS = "portfolio.risk_metrics"
STRESS_TESTS = "portfolio.stress_tests"
LIQUIDITY = "portfolio.liquidity"
MARKET_BRIEF = "portfolio.market_brief"
