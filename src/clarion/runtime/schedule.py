"""When a flow's `wait` ends: pure arithmetic on dates, offsets, local times and time zones.

Whole-day offsets move the local date (so "2 days before at 09:00" is 09:00 on the wall clock
whatever daylight saving did in between); other offsets move the instant. A local time that does
not exist (the hour skipped in spring) moves forward past the gap; one that happens twice (autumn)
is the first of the two.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAY = 86_400


class ScheduleError(ValueError):
    """A wait whose moment cannot be computed (the field is absent or not a date)."""


def as_moment(value: Any, zone: ZoneInfo) -> datetime | date:
    """A date (no time of day) or an aware datetime from an event field."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ScheduleError(f"{value!r} is not a date")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleError(f"{value!r} is not an ISO 8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`at` on `day` in `zone`, as an aware datetime that exists on the wall clock."""
    naive = datetime.combine(day, at)
    moment = naive.replace(tzinfo=zone, fold=0)
    # A time in the spring gap does not survive the round trip through UTC; move past the gap.
    back = moment.astimezone(UTC).astimezone(zone)
    if back.replace(tzinfo=None) != naive:
        return back
    return moment


def wait_until(value: Any, offset_seconds: int, at: str | None, zone: ZoneInfo) -> datetime:
    """The instant a `wait: {until, offset, at}` ends, in UTC."""
    moment = as_moment(value, zone)
    clock = time.fromisoformat(at) if at else None
    days, rest = divmod(offset_seconds, DAY) if offset_seconds % DAY == 0 else (0, offset_seconds)
    if isinstance(moment, datetime):
        local_moment = moment.astimezone(zone)
        day = local_moment.date() + timedelta(days=days)
        if clock is not None:
            result = local(day, clock, zone)
        else:
            result = local(day, local_moment.timetz().replace(tzinfo=None), zone)
    else:
        day = moment + timedelta(days=days)
        result = local(day, clock or time(0, 0), zone)
    # Aware arithmetic in Python is wall-clock arithmetic; an offset that is not whole days
    # moves the instant, so it is added in UTC.
    return result.astimezone(UTC) + timedelta(seconds=rest)


def wait_for(start: datetime, seconds: int) -> datetime:
    return (start + timedelta(seconds=seconds)).astimezone(UTC)


def iso(moment: float | None) -> str | None:
    """A stored time (seconds since the epoch) as ISO 8601 in UTC, with a `Z`."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
