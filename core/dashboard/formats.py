"""How the dashboard writes dates and durations: one helper each, so that every page says them alike.

Dates leave out the year only when it is the current one ("Oct 16", "Oct 16, 2016"), so that an event of
2016 never reads like one of this year. Every helper takes the clock (`now`) for the tests; the template
filters read the real one. The filters are template builtins (config/settings.py `TEMPLATES`), so a
template uses them without `{% load %}`:

    {{ event.ts|day }}            Oct 16 / Oct 16, 2016
    {{ event.ts|day:"time" }}     Oct 16, 14:05 / Oct 16, 2016, 14:05
    {{ event.ts|day:"seconds" }}  Oct 16, 14:05:09
    {{ event.ts|ago }}            3 days ago / in 2 hours
    {{ seconds|duration }}        48 s / 1 min 12 s / 2 h 10 min
"""

from __future__ import annotations

import datetime as dt
import math

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.timesince import timesince

register = template.Library()

_TIME_FORMATS = {"": "", "time": ", H:i", "seconds": ", H:i:s"}


def _aware(value: dt.datetime) -> dt.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def format_day(value: dt.date | dt.datetime | None, *, now: dt.datetime | None = None, precision: str = "") -> str:
    """'Oct 16' in the current year, 'Oct 16, 2016' in another; `precision` "time" or "seconds" adds the
    clock time. The year is the one of the dashboard's time zone (UTC). None gives ''."""
    if value is None or value == "":
        return ""
    if precision not in _TIME_FORMATS:
        raise ValueError(f"precision must be one of {sorted(_TIME_FORMATS)}, not {precision!r}")
    now = _aware(now or timezone.now())
    if isinstance(value, dt.datetime):
        value = _aware(value)
        time_part = _TIME_FORMATS[precision]
    else:
        time_part = ""  # a date has no clock time
    year_part = "" if value.year == now.year else ", Y"
    return date_format(value, f"M j{year_part}{time_part}")


def format_ago(value: dt.datetime | None, *, now: dt.datetime | None = None) -> str:
    """'3 days ago' for the past, 'in 2 hours' for the future (a clock set wrong, a scheduled time)."""
    if value is None or value == "":
        return ""
    now = now or timezone.now()
    if value > now:
        return f"in {timesince(now, value)}"
    return f"{timesince(value, now)} ago"


def format_duration(seconds: float | dt.timedelta | None) -> str:
    """A length of time in the two largest units: '0.4 s', '48 s', '1 min 12 s', '2 h 10 min', '3 d 4 h'."""
    if seconds is None or seconds == "":
        return ""
    if isinstance(seconds, dt.timedelta):
        seconds = seconds.total_seconds()
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 10 and round(seconds, 1) != round(seconds):
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for unit, size, smaller, smaller_size in (("d", 86_400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if whole >= size:
            rest = whole % size // smaller_size
            return f"{whole // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{whole} s"


@register.filter
def day(value, precision: str = "") -> str:
    return format_day(value, precision=precision)


@register.filter
def ago(value) -> str:
    return format_ago(value)


@register.filter
def duration(value) -> str:
    return format_duration(value)
