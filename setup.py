from setuptools import find_packages, setup

setup(
    name="portfolio_pipeline",
    version="0.1.0",
    description=(
        "Dagster pipeline: OHLCV + news -> features, sentiment, CatBoost forecasts, "
        "DRL and classic portfolio policies, backtests, risk and rebalancing recommendations"
    ),
    packages=find_packages(exclude=["portfolio_pipeline_tests", "benchmarks"]),
    python_requires=">=3.11,<3.14",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-postgres==0.29.27",
        "dagster-duckdb==0.29.27",
        "dagster-duckdb-polars==0.29.27",
        "duckdb>=1.5,<2",
        "polars>=1.30",
        "pyarrow>=17",
        "numpy>=1.26",
        "pandas>=2.2",
        "scipy>=1.11",
        "requests>=2.31",
        "catboost==1.2.10",
        "torch==2.13.0",
        "stable-baselines3==2.9.2",
        "gymnasium>=1.0,<2",
        "transformers>=5,<6",
        "tokenizers",
        "ray[tune]==2.60.0",
        "great-expectations==1.24.1",
        "skfolio==1.12.2",
        "scikit-learn",
        "threadpoolctl",  # one BLAS thread in the backtests (portfolio.backtest)
        "matplotlib",
        "psycopg2-binary",
        # portfolio-pipeline serve: the read-only API, dashboard and metrics
        "fastapi>=0.115",
        "uvicorn>=0.30",
        "prometheus_client>=0.20",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout",
            "ruff",
            "pre-commit",
            "import-linter>=2.1",
            "mypy>=1.10",
        ],
    },
    entry_points={
        "console_scripts": ["portfolio-pipeline=portfolio_pipeline.cli:main"],
    },
)
