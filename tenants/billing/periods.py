"""Usage periods: calendar months in UTC. Quotas reset at 00:00 UTC on the first of each month."""

from __future__ import annotations

import datetime as dt


def period_of(moment: dt.datetime) -> dt.date:
    """The first day of the month that `moment` (aware) falls in, in UTC."""
    if moment.tzinfo is None:
        raise ValueError("period_of needs an aware datetime")
    utc = moment.astimezone(dt.UTC)
    return dt.date(utc.year, utc.month, 1)


def next_period(period: dt.date) -> dt.date:
    return dt.date(period.year + period.month // 12, period.month % 12 + 1, 1)


def previous_period(period: dt.date) -> dt.date:
    return dt.date(period.year - (period.month == 1), (period.month - 2) % 12 + 1, 1)


def bounds(period: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the period as aware UTC datetimes."""
    start = dt.datetime(period.year, period.month, 1, tzinfo=dt.UTC)
    end_day = next_period(period)
    return start, dt.datetime(end_day.year, end_day.month, 1, tzinfo=dt.UTC)


def label(period: dt.date) -> str:
    return f"{period:%Y%m}"
