"""Five-field cron expressions (minute hour day-of-month month day-of-week, as Kubernetes CronJobs read them):
the fields' ranges and the longest gap between two runs, which the drills' staleness alerts are built from."""

from __future__ import annotations

import datetime as dt
from functools import cache

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def _values(text: str, name: str, low: int, high: int) -> set[int]:
    """One field's values; raises ValueError naming the field and the range it accepts."""
    found: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            start, end = low, high
        else:
            first, _, last = span.partition("-")
            start, end = int(first), int(last or first) if last or not step else high
        every = int(step) if step else 1
        if not (low <= start <= high and low <= end <= high) or start > end or every < 1:
            raise ValueError(f"its {name} field {part!r} is outside {low}-{high}")
        found.update(range(start, end + 1, every))
    return found


def parse(expr: str) -> list[set[int]]:
    """The five fields' value sets (day of week 7 is Sunday, as 0). The grammar is checked by
    config/services.py check_cron first, which then calls check_ranges."""
    fields = expr.split()
    if len(fields) != len(FIELDS):
        raise ValueError("must have 5 fields: minute hour day-of-month month day-of-week")
    sets = [_values(text, *spec) for text, spec in zip(fields, FIELDS)]
    sets[4] = {d % 7 for d in sets[4]}
    return sets


DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29 happens


def check_ranges(expr: str) -> str:
    """The fields' ranges, and that the expression runs at all (not only on February 30)."""
    sets, fields = parse(expr), expr.split()
    if fields[4] == "*" and not any(day <= DAYS_IN_MONTH[month - 1] for month in sets[3] for day in sets[2]):
        raise ValueError("never runs (no month has the days its day-of-month field names)")
    return expr


def _runs_on(day: dt.date, sets: list[set[int]], dom_any: bool, dow_any: bool) -> bool:
    if day.month not in sets[3]:
        return False
    dom, dow = day.day in sets[2], (day.isoweekday() % 7) in sets[4]
    # cron's rule: with both day fields restricted, either one matching is enough
    return dom and dow if dom_any or dow_any else dom or dow


@cache  # a pure function of its arguments; the drills ask three times per schedule (each walks 800 days)
def longest_gap_seconds(expr: str, start: dt.date = dt.date(2026, 1, 1), days: int = 800) -> int:
    """The longest time between two consecutive runs over `days` from `start` (a little over two years:
    every weekday/month-day combination and a leap day); ValueError when it never runs."""
    sets = parse(expr)
    fields = expr.split()
    dom_any, dow_any = fields[2] == "*", fields[4] == "*"
    times = sorted((h, m) for h in sets[1] for m in sets[0])
    previous, longest = None, 0
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        if not _runs_on(day, sets, dom_any, dow_any):
            continue
        for hour, minute in times:
            when = dt.datetime(day.year, day.month, day.day, hour, minute)
            if previous is not None:
                longest = max(longest, int((when - previous).total_seconds()))
            previous = when
    if previous is None:
        raise ValueError("never runs (no day matches its day-of-month, month and day-of-week fields)")
    return longest or 86400 * days
