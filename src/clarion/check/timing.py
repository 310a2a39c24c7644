"""Durations (`2h`, `1h30m`), signed offsets (`-2d`), times of day (`09:00`), rates (`20/s`)."""

from __future__ import annotations

import re
from datetime import time
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")
_PART = re.compile(r"(\d+)([smhdw])")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_RATE = re.compile(r"^(\d+)\s*/\s*(s|m|h|sec|second|min|minute|hour)$")
DURATION_HINT = "write a number and a unit: 30s, 15m, 2h, 1d, 1w, or combined like 1h30m"


def parse_duration(text: str) -> int | None:
    """Seconds in a duration such as `2h` or `1h30m`; None when it does not parse."""
    text = text.strip()
    if not _DURATION.match(text):
        return None
    return sum(int(n) * UNIT_SECONDS[u] for n, u in _PART.findall(text))


def parse_offset(text: str) -> int | None:
    """Seconds in a signed duration such as `-2d` or `+1h`."""
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    seconds = parse_duration(text.lstrip("+-"))
    return None if seconds is None else sign * seconds


def parse_time_of_day(text: str) -> time | None:
    match = _TIME.match(text.strip())
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def parse_rate(text: str) -> tuple[int, int] | None:
    """(count, per seconds) of a rate such as `20/s`."""
    match = _RATE.match(text.strip())
    if not match or int(match.group(1)) == 0:
        return None
    per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}.get(
        match.group(2), 3600
    )
    return int(match.group(1)), per


def format_duration(seconds: int) -> str:
    """The shortest canonical spelling: 90 -> `1m30s`, -172800 -> `-2d`."""
    if seconds == 0:
        return "0s"
    sign, rest, out = ("-" if seconds < 0 else ""), abs(seconds), ""
    for unit in ("w", "d", "h", "m", "s"):
        count, rest = divmod(rest, UNIT_SECONDS[unit])
        if count:
            out += f"{count}{unit}"
    return sign + out


@cache
def zone(name: str) -> ZoneInfo | None:
    if not name or name != name.strip() or ".." in name or name.startswith("/"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
