"""Data-quality gates for raw OHLCV and news, run with Great Expectations.

Pure (no dagster). Each rule is a named Great Expectations expectation; a failed rule is
reported with the symbols and dates (or article ids) of the offending rows, so a user can
find the bad input. The Dagster layer turns every rule into an asset check and refuses to
write a partition whose blocking rules failed, so bad data never replaces good data.

great_expectations is imported lazily (~3 s): loading the Dagster definitions stays fast.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import ModuleType
from typing import TYPE_CHECKING

import polars as pl

from portfolio_pipeline.market.sources.base import NEWS_SCHEMA, OHLCV_SCHEMA

if TYPE_CHECKING:  # imported lazily at run time (~3 s)
    from great_expectations.expectations import Expectation

ERROR = "ERROR"
WARN = "WARN"


@dataclass(frozen=True)
class Rule:
    name: str  # also the Dagster asset check name
    description: str
    severity: str = ERROR


OHLCV_RULES: tuple[Rule, ...] = (
    Rule("ohlcv_columns_and_types", "every required column is present with its type"),
    Rule("ohlcv_values_not_null", "symbol, date, open, high, low, close, volume are not null"),
    Rule("ohlcv_unique_symbol_date", "one row per (symbol, date)"),
    Rule("ohlcv_prices_positive", "open, high, low, close > 0"),
    Rule("ohlcv_volume_non_negative", "volume >= 0"),
    Rule("ohlcv_high_ge_open_close", "high >= max(open, close) and high >= low"),
    Rule("ohlcv_low_le_open_close", "low <= min(open, close)"),
    Rule("ohlcv_no_future_dates", "no candle dated after today (UTC)"),
    Rule("ohlcv_no_gaps", "no missing day inside a symbol's trading life", WARN),
)

NEWS_RULES: tuple[Rule, ...] = (
    Rule("news_columns_and_types", "every required column is present with its type"),
    Rule("news_keys_not_null", "id and published_at are not null"),
    Rule("news_unique_id", "one row per article id"),
    Rule("news_title_not_empty", "every article has a non-empty title"),
    Rule("news_no_future_dates", "no article published after now (UTC)"),
)


@dataclass
class RuleResult:
    rule: Rule
    passed: bool
    failing_rows: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.passed:
            return f"{self.rule.name}: passed ({self.rule.description})"
        more = (
            f" (+{self.failing_rows - len(self.examples)} more)"
            if self.failing_rows > len(self.examples)
            else ""
        )
        return (
            f"rule '{self.rule.name}' failed ({self.rule.description}): "
            f"{self.failing_rows} row(s): {'; '.join(self.examples)}{more}"
        )


@dataclass
class ValidationReport:
    dataset: str
    results: list[RuleResult]

    @property
    def blocking_failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed and r.rule.severity == ERROR]

    @property
    def ok(self) -> bool:
        return not self.blocking_failures

    def failure_message(self) -> str:
        lines = [r.message for r in self.blocking_failures]
        return f"{self.dataset}: data-quality gate failed, nothing was written:\n" + "\n".join(
            lines
        )


_context_lock = threading.Lock()
_context_cache: dict[str, object] = {}


def _batch_definition(dataset: str):
    """One ephemeral GX context per process; one dataframe asset per dataset."""
    with _context_lock:
        if "context" not in _context_cache:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            _context_cache["context"] = context
            _context_cache["source"] = context.data_sources.add_pandas("portfolio_pipeline")
        key = f"batch:{dataset}"
        if key not in _context_cache:
            asset = _context_cache["source"].add_dataframe_asset(dataset)  # type: ignore[attr-defined]
            _context_cache[key] = asset.add_batch_definition_whole_dataframe("whole")
        return _context_cache[key]


def _run_suite(dataset: str, frame: pl.DataFrame, expectations: list[tuple[Rule, Expectation]]):
    import great_expectations as gx

    batch_definition = _batch_definition(dataset)  # creates the context the suite needs
    suite = gx.ExpectationSuite(name=f"{dataset}_suite")
    for rule, expectation in expectations:
        expectation.meta = {"rule": rule.name}
        suite.add_expectation(expectation)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    return batch.validate(suite, result_format={"result_format": "COMPLETE"})


def _collect(
    rules: tuple[Rule, ...], validation, describe_row, frame: pl.DataFrame, max_examples: int
) -> list[RuleResult]:
    by_rule: dict[str, RuleResult] = {r.name: RuleResult(r, True) for r in rules}
    bad_rows: dict[str, set[int]] = {r.name: set() for r in rules}
    for res in validation.results:
        name = res.expectation_config.meta["rule"]
        if res.success:
            continue
        by_rule[name].passed = False
        idx = res.result.get("unexpected_index_list") or []
        bad_rows[name].update(int(i) for i in idx if isinstance(i, int | float))
        if not idx and res.exception_info and res.exception_info.get("raised_exception"):
            by_rule[name].examples.append(str(res.exception_info.get("exception_message")))
    for name, rows in bad_rows.items():
        result = by_rule[name]
        if rows:
            ordered = sorted(rows)
            result.failing_rows = len(ordered)
            result.examples = [
                describe_row(frame.row(i, named=True)) for i in ordered[:max_examples]
            ]
        elif not result.passed and not result.failing_rows:
            result.failing_rows = frame.height
    return [by_rule[r.name] for r in rules]


def _missing_columns(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> list[str]:
    return [c for c in schema if c not in frame.columns]


def validate_ohlcv(
    frame: pl.DataFrame, *, today: date | None = None, max_examples: int = 10
) -> ValidationReport:
    """Validate a raw OHLCV frame (:data:`OHLCV_SCHEMA`) against :data:`OHLCV_RULES`."""
    today = today or datetime.now(UTC).date()
    missing = _missing_columns(frame, OHLCV_SCHEMA)
    if missing:
        failed = RuleResult(OHLCV_RULES[0], False, frame.height, [f"missing columns {missing}"])
        return ValidationReport("raw_ohlcv", [failed])
    # Cross-row facts are derived here; GX then checks them like any other column.
    frame = frame.sort("symbol", "date").with_columns(
        (pl.col("date") - pl.col("date").shift(1).over("symbol"))
        .dt.total_days()
        .alias("_days_since_previous"),
        (pl.col("date") > today).alias("_is_future"),
    )
    validation = _run_suite("raw_ohlcv", frame, _ohlcv_expectations())

    def describe(row: dict) -> str:
        gap = row.get("_days_since_previous")
        extra = f" ({gap} days after the previous candle)" if gap not in (None, 1) else ""
        return f"{row['symbol']} {row['date']}{extra}"

    return ValidationReport(
        "raw_ohlcv", _collect(OHLCV_RULES, validation, describe, frame, max_examples)
    )


_PRICE_COLUMNS = ("open", "high", "low", "close")


def _ohlcv_expectations() -> list[tuple[Rule, Expectation]]:
    """One GX expectation per (rule, column) of :data:`OHLCV_RULES`."""
    import great_expectations.expectations as gxe

    rules = {rule.name: rule for rule in OHLCV_RULES}
    return [*_column_expectations(gxe, rules), *_value_expectations(gxe, rules)]


def _column_expectations(gxe: ModuleType, r: dict[str, Rule]) -> list[tuple[Rule, Expectation]]:
    """The frame's shape: columns and types, no nulls, one row per (symbol, date)."""
    prices = _PRICE_COLUMNS
    exp: list[tuple[Rule, Expectation]] = []
    types = {"symbol": "str", "date": "datetime64[ms]", **dict.fromkeys(prices, "float64")}
    types["volume"] = "float64"
    for column, dtype in types.items():
        exp.append(
            (
                r["ohlcv_columns_and_types"],
                gxe.ExpectColumnValuesToBeOfType(column=column, type_=dtype),
            )
            if dtype != "str"
            else (r["ohlcv_columns_and_types"], gxe.ExpectColumnToExist(column=column))
        )
    for column in ("symbol", "date", *prices, "volume"):
        exp.append((r["ohlcv_values_not_null"], gxe.ExpectColumnValuesToNotBeNull(column=column)))
    exp.append(
        (
            r["ohlcv_unique_symbol_date"],
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "date"]),
        )
    )
    return exp


def _value_expectations(gxe: ModuleType, r: dict[str, Rule]) -> list[tuple[Rule, Expectation]]:
    """The values: positive prices, non-negative volume, high/low bracketing open and close,
    no future dates, no gaps."""
    prices = _PRICE_COLUMNS
    exp: list[tuple[Rule, Expectation]] = []
    for column in prices:
        exp.append(
            (
                r["ohlcv_prices_positive"],
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True),
            )
        )
    exp.append(
        (
            r["ohlcv_volume_non_negative"],
            gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
        )
    )
    for other in ("open", "close", "low"):
        exp.append(
            (
                r["ohlcv_high_ge_open_close"],
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="high", column_B=other, or_equal=True
                ),
            )
        )
    for other in ("open", "close"):
        exp.append(
            (
                r["ohlcv_low_le_open_close"],
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=other, column_B="low", or_equal=True
                ),
            )
        )
    exp.append(
        (
            r["ohlcv_no_future_dates"],
            gxe.ExpectColumnValuesToBeInSet(column="_is_future", value_set=[False]),
        )
    )
    exp.append(
        (
            r["ohlcv_no_gaps"],
            gxe.ExpectColumnValuesToBeBetween(
                column="_days_since_previous", min_value=1, max_value=1
            ),
        )
    )
    return exp


def validate_news(
    frame: pl.DataFrame, *, now: datetime | None = None, max_examples: int = 10
) -> ValidationReport:
    """Validate a raw news frame (:data:`NEWS_SCHEMA`) against :data:`NEWS_RULES`."""
    import great_expectations.expectations as gxe

    now = now or datetime.now(UTC)
    missing = _missing_columns(frame, NEWS_SCHEMA)
    if missing:
        failed = RuleResult(NEWS_RULES[0], False, frame.height, [f"missing columns {missing}"])
        return ValidationReport("raw_news", [failed])
    frame = frame.with_columns(
        (pl.col("published_at") > pl.lit(now).dt.convert_time_zone("UTC")).alias("_is_future"),
        pl.col("title").fill_null("").str.strip_chars().str.len_chars().alias("_title_length"),
    ).drop("symbols")  # GX's pandas backend does not need the list column
    r = {rule.name: rule for rule in NEWS_RULES}
    exp: list[tuple[Rule, Expectation]] = [
        (r["news_columns_and_types"], gxe.ExpectColumnToExist(column=c))
        for c in NEWS_SCHEMA
        if c != "symbols"
    ]
    exp += [
        (r["news_keys_not_null"], gxe.ExpectColumnValuesToNotBeNull(column="id")),
        (r["news_keys_not_null"], gxe.ExpectColumnValuesToNotBeNull(column="published_at")),
        (r["news_unique_id"], gxe.ExpectColumnValuesToBeUnique(column="id")),
        (
            r["news_title_not_empty"],
            gxe.ExpectColumnValuesToBeBetween(column="_title_length", min_value=1),
        ),
        (
            r["news_no_future_dates"],
            gxe.ExpectColumnValuesToBeInSet(column="_is_future", value_set=[False]),
        ),
    ]
    validation = _run_suite("raw_news", frame, exp)

    def describe(row: dict) -> str:
        return f"article {row['id']} published {row['published_at']} '{(row['title'] or '')[:60]}'"

    return ValidationReport(
        "raw_news", _collect(NEWS_RULES, validation, describe, frame, max_examples)
    )
