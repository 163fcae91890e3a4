"""The dashboard's one way of writing dates and durations (core/dashboard/formats.py), against a given clock."""

from __future__ import annotations

import datetime as dt

import pytest
from django.template import Context, Template

from core.dashboard.formats import format_ago, format_day, format_duration

NOW = dt.datetime(2031, 3, 4, 9, 30, tzinfo=dt.UTC)


def test_the_year_shows_only_when_it_is_not_the_current_one():
    this_year = dt.datetime(2031, 10, 16, 14, 5, 9, tzinfo=dt.UTC)
    old = dt.datetime(2016, 10, 16, 14, 5, 9, tzinfo=dt.UTC)
    assert format_day(this_year, now=NOW) == "Oct 16"
    assert format_day(old, now=NOW) == "Oct 16, 2016"
    assert format_day(this_year, now=NOW, precision="time") == "Oct 16, 14:05"
    assert format_day(old, now=NOW, precision="time") == "Oct 16, 2016, 14:05"
    assert format_day(old, now=NOW, precision="seconds") == "Oct 16, 2016, 14:05:09"
    assert format_day(dt.datetime(2032, 1, 2, tzinfo=dt.UTC), now=NOW) == "Jan 2, 2032"  # next year too
    assert format_day(dt.date(2016, 10, 16), now=NOW, precision="time") == "Oct 16, 2016"  # a date has no time
    assert format_day(None, now=NOW) == ""
    with pytest.raises(ValueError):
        format_day(old, now=NOW, precision="minutes")


def test_the_year_is_the_one_in_the_dashboards_time_zone():
    # 23:30 on Dec 31 at UTC-2 is already the next year in UTC, which the dashboard shows.
    late = dt.datetime(2030, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert format_day(late, now=NOW, precision="time") == "Jan 1, 01:30"


def test_ago_reads_forward_for_a_future_time():
    def ago(value):
        return format_ago(value, now=NOW).replace("\N{NO-BREAK SPACE}", " ")  # Django keeps "3 days" together

    assert ago(NOW - dt.timedelta(days=3)) == "3 days ago"
    assert ago(dt.datetime(2016, 10, 16, tzinfo=dt.UTC)) == "14 years, 4 months ago"
    assert ago(NOW + dt.timedelta(hours=2)) == "in 2 hours"
    assert ago(None) == ""


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (0.42, "0.4 s"), (3, "3 s"), (48.2, "48 s"), (72.3, "1 min 12 s"), (120, "2 min"),
    (3599.6, "1 h"), (7_800, "2 h 10 min"), (86_400 + 4 * 3600 + 59, "1 d 4 h"),
    (dt.timedelta(minutes=3, seconds=5), "3 min 5 s"), (None, ""), (-1, ""), (float("nan"), ""),
])
def test_durations_read_in_units(seconds, text):
    assert format_duration(seconds) == text


def test_the_filters_are_in_every_template_without_load():
    old = dt.datetime(2016, 10, 16, 14, 5, 9, tzinfo=dt.UTC)
    html = Template('{{ ts|day }}|{{ ts|day:"seconds" }}|{{ s|duration }}|{{ ts|ago }}').render(
        Context({"ts": old, "s": 72.3}))
    day, seconds, duration, ago = html.split("|")
    assert (day, seconds, duration) == ("Oct 16, 2016", "Oct 16, 2016, 14:05:09", "1 min 12 s")
    assert ago.endswith(" ago") and "years" in ago
