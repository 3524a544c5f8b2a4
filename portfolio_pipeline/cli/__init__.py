"""Console script ``portfolio-pipeline``: materialize, query, status, recommendations, backtest,
serve, brief.

One module per command group (``runs``: materialize; ``reports``: the read-only commands); this one parses and dispatches.

Every command exits non-zero with a one-line reason on failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from portfolio_pipeline.cli.brief import brief
from portfolio_pipeline.cli.common import CliError
from portfolio_pipeline.cli.reports import backtest, query, recommendations, status, track_record
from portfolio_pipeline.cli.runs import materialize
from portfolio_pipeline.settings import load_settings


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portfolio-pipeline",
        description="Dagster portfolio pipeline: materialize assets and query the warehouse.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="materialize assets in process")
    m.add_argument("--select", default="*", help="asset selection, e.g. '*' or 'raw_ohlcv+'")
    m.add_argument(
        "--partition",
        default=None,
        help="for the raw (monthly-partitioned) assets: a day (2024-01-05), a month (2024-01) or "
        "a range (2024-01-05...2024-03-31, 2024-01...2024-03); the months holding those days "
        "are replaced whole (the current month up to yesterday); "
        "default: every month from the configured start to yesterday",
    )
    m.add_argument("--log-level", default="WARNING", help="Dagster console log level")
    q = sub.add_parser("query", help="run read-only SQL against the warehouse")
    q.add_argument("sql")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sub.add_parser("status", help="tables, row counts, date ranges, latest model versions")
    r = sub.add_parser("recommendations", help="latest rebalancing recommendations")
    r.add_argument("--as-of", default=None)
    r.add_argument("--strategy", default=None)
    r.add_argument("--format", choices=("table", "csv", "json"), default="table")
    r.add_argument(
        "--track-record",
        action="store_true",
        help="how past recommendations did once their horizon elapsed (hit rate, value added)",
    )
    b = sub.add_parser("backtest", help="backtest metrics of every strategy")
    b.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s = sub.add_parser("serve", help="read-only REST API, dashboard and Prometheus metrics")
    s.add_argument(
        "--host", default=None, help="default PORTFOLIO_PIPELINE_SERVE_HOST or 127.0.0.1"
    )
    s.add_argument(
        "--port", type=int, default=None, help="default PORTFOLIO_PIPELINE_SERVE_PORT or 8000"
    )
    s.add_argument("--log-level", default="info", help="uvicorn log level")
    mb = sub.add_parser("brief", help="the market brief of the latest recommendation run")
    mb.add_argument("--run-id", default=None, help="a recommendation run (default: the latest)")
    mb.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "materialize":
            code = materialize(args.select, args.partition, settings, args.log_level)
        elif args.command == "query":
            code = query(args.sql, settings, args.format)
        elif args.command == "status":
            code = status(settings)
        elif args.command == "recommendations" and args.track_record:
            code = track_record(settings, args.format)
        elif args.command == "serve":
            from portfolio_pipeline.cli.serve import serve

            code = serve(settings, args.host, args.port, args.log_level)
        elif args.command == "recommendations":
            code = recommendations(settings, args.as_of, args.strategy, args.format)
        elif args.command == "brief":
            code = brief(settings, args.run_id, args.format)
        else:
            code = backtest(settings, args.format)
    except (CliError, ValueError, RuntimeError) as exc:
        print(f"portfolio-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return code
