"""When a wait ends: offsets, `at`, time zones, daylight saving, month ends."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from clarion.runtime.schedule import ScheduleError, as_moment, wait_for, wait_until

MADRID = ZoneInfo("Europe/Madrid")
JAKARTA = ZoneInfo("Asia/Jakarta")
NEW_YORK = ZoneInfo("America/New_York")
DAY = 86_400


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("value", "offset", "at", "zone", "expected"),
    [
        # two days before the due date at 09:00 local (seed 003)
        ("2026-03-10", -2 * DAY, "09:00", MADRID, "2026-03-08T09:00:00+01:00"),
        # across the spring change (last Sunday of March): still 09:00 on the wall clock
        ("2026-03-31", -2 * DAY, "09:00", MADRID, "2026-03-29T09:00:00+02:00"),
        ("2026-03-30", -2 * DAY, "09:00", MADRID, "2026-03-28T09:00:00+01:00"),
        # and the autumn one
        ("2026-10-27", -2 * DAY, "09:00", MADRID, "2026-10-25T09:00:00+01:00"),
        # month and year ends
        ("2026-03-01", -2 * DAY, "09:00", MADRID, "2026-02-27T09:00:00+01:00"),
        ("2024-03-01", -1 * DAY, "09:00", MADRID, "2024-02-29T09:00:00+01:00"),
        ("2027-01-01", -1 * DAY, "10:00", JAKARTA, "2026-12-31T10:00:00+07:00"),
        # on the day itself, no offset, at a time (seed 002's follow-up)
        ("2026-06-15", 0, "10:00", JAKARTA, "2026-06-15T10:00:00+07:00"),
        # a date with no `at`: midnight local
        ("2026-06-15", 0, None, MADRID, "2026-06-15T00:00:00+02:00"),
        # a date-time: offsets that are not whole days move the instant
        ("2026-06-15T12:00:00Z", -3 * 3600, None, MADRID, "2026-06-15T09:00:00+00:00"),
        # a date-time with `at`: that time on its local date
        ("2026-06-15T23:30:00Z", 0, "09:00", MADRID, "2026-06-16T09:00:00+02:00"),
    ],
)
def test_wait_until(value: str, offset: int, at: str | None, zone: ZoneInfo, expected: str) -> None:
    assert wait_until(value, offset, at, zone) == utc(expected)


def test_a_time_in_the_spring_gap_moves_past_it() -> None:
    # 02:30 does not exist in Madrid on 2026-03-29 (02:00 -> 03:00)
    moment = wait_until("2026-03-29", 0, "02:30", MADRID)
    assert moment.astimezone(MADRID).strftime("%H:%M") == "03:30"


def test_a_time_that_happens_twice_is_the_first() -> None:
    # 01:30 happens twice in New York on 2026-11-01
    moment = wait_until("2026-11-01", 0, "01:30", NEW_YORK)
    assert moment == utc("2026-11-01T01:30:00-04:00")


def test_wait_for_is_elapsed_time_across_dst() -> None:
    start = utc("2026-03-28T12:00:00+01:00")
    assert wait_for(start, DAY) == utc("2026-03-29T13:00:00+02:00")


def test_moments_that_are_not_dates() -> None:
    with pytest.raises(ScheduleError):
        as_moment("next tuesday", MADRID)
    with pytest.raises(ScheduleError):
        as_moment(42, MADRID)
    assert as_moment("2026-03-10", MADRID) == date(2026, 3, 10)
