"""Historical stress scenarios: the crises of each market, and user scenarios from a setting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class HistoricalScenario:
    name: str
    first_day: date
    last_day: date
    description: str


HISTORICAL_SCENARIOS: tuple[HistoricalScenario, ...] = (
    HistoricalScenario(
        "covid_crash_day", date(2020, 3, 12), date(2020, 3, 12), "COVID crash, 2020-03-12"
    ),
    HistoricalScenario("covid_crash_week", date(2020, 3, 9), date(2020, 3, 15), "COVID crash week"),
    HistoricalScenario(
        "terra_luna", date(2022, 5, 5), date(2022, 5, 12), "Terra/LUNA collapse, May 2022"
    ),
    HistoricalScenario("ftx", date(2022, 11, 6), date(2022, 11, 10), "FTX collapse, Nov 2022"),
)
CRYPTO_SCENARIOS = HISTORICAL_SCENARIOS
EQUITY_SCENARIOS: tuple[HistoricalScenario, ...] = (
    HistoricalScenario(
        "gfc_2008", date(2008, 9, 12), date(2008, 11, 20), "Lehman to the Nov 2008 low"
    ),
    HistoricalScenario(
        "covid_crash", date(2020, 2, 19), date(2020, 3, 23), "COVID crash, peak to trough"
    ),
    HistoricalScenario(
        "covid_crash_day", date(2020, 3, 16), date(2020, 3, 16), "COVID crash, 2020-03-16"
    ),
    HistoricalScenario(
        "bear_2022", date(2022, 1, 3), date(2022, 10, 12), "2022 rate-hike bear market"
    ),
)


class ScenarioError(ValueError):
    """A stress-scenario setting that cannot be parsed (names the item)."""


def scenarios_for(calendar_kind: str) -> tuple[HistoricalScenario, ...]:
    """Default historical scenarios of a market: crypto crises on a 7-day calendar, equity
    crises (2008, 2020-03, 2022) otherwise."""
    return CRYPTO_SCENARIOS if calendar_kind == "7-day" else EQUITY_SCENARIOS


def parse_scenarios(text: str) -> tuple[HistoricalScenario, ...]:
    """``"name:2020-02-19..2020-03-23,other:2022-05-05"`` -> scenarios (one day if no ``..``)."""
    scenarios = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, span = item.partition(":")
        first, _, last = span.partition("..")
        try:
            start = date.fromisoformat(first.strip())
            end = date.fromisoformat(last.strip()) if last.strip() else start
        except ValueError:
            raise ScenarioError(
                f"stress scenario {item!r}: expected name:YYYY-MM-DD[..YYYY-MM-DD]"
            ) from None
        if not name.strip() or end < start:
            raise ScenarioError(f"stress scenario {item!r}: empty name or end before start")
        scenarios.append(HistoricalScenario(name.strip(), start, end, f"user scenario {span}"))
    return tuple(scenarios)
