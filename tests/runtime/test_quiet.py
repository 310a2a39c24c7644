"""Quiet hours: when a window ends, on the reader's wall clock, across midnight and DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from clarion.compile.table import QuietHours
from clarion.runtime.envelope import QuietHoursIn
from clarion.runtime.quiet import contact_window, stored_form, window_end

MADRID = ZoneInfo("Europe/Madrid")
NIGHT = QuietHours(start="21:00", end="08:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("moment", "until"),
    [
        ("2026-03-10T20:59:59+01:00", None),  # just before
        ("2026-03-10T21:00:00+01:00", "2026-03-11T08:00:00+01:00"),  # opens
        ("2026-03-10T23:30:00+01:00", "2026-03-11T08:00:00+01:00"),  # before midnight
        ("2026-03-11T03:00:00+01:00", "2026-03-11T08:00:00+01:00"),  # after midnight
        ("2026-03-11T08:00:00+01:00", None),  # closes: sent at once
        ("2026-03-11T12:00:00+01:00", None),
        # the night the clocks go forward (29 March, 02:00 -> 03:00): 08:00 is +02:00
        ("2026-03-28T23:00:00+01:00", "2026-03-29T08:00:00+02:00"),
        # and back (25 October, 03:00 -> 02:00): 08:00 is +01:00 again
        ("2026-10-24T22:00:00+02:00", "2026-10-25T08:00:00+01:00"),
    ],
)
def test_a_window_across_midnight(moment: str, until: str | None) -> None:
    end = window_end(NIGHT, at(moment), MADRID)
    assert end == (at(until) if until else None)
    if end is not None:
        assert end.tzinfo is UTC


def test_a_window_within_one_day() -> None:
    lunch = QuietHours(start="13:00", end="15:00")
    assert window_end(lunch, at("2026-03-10T12:59:00+01:00"), MADRID) is None
    assert window_end(lunch, at("2026-03-10T14:00:00+01:00"), MADRID) == at(
        "2026-03-10T15:00:00+01:00"
    )
    assert window_end(lunch, at("2026-03-10T15:00:00+01:00"), MADRID) is None


def test_a_window_that_ends_in_the_skipped_hour_ends_after_the_gap() -> None:
    # 02:30 does not exist on 29 March in Madrid: the window ends at 03:30 CEST (01:30 UTC).
    early = QuietHours(start="23:00", end="02:30")
    end = window_end(early, at("2026-03-29T01:00:00+01:00"), MADRID)
    assert end == at("2026-03-29T01:30:00Z")


def test_the_moment_is_read_in_the_readers_zone() -> None:
    jakarta = ZoneInfo("Asia/Jakarta")
    # 15:00 UTC is 16:00 in Madrid (outside) and 22:00 in Jakarta (inside)
    moment = at("2026-03-10T15:00:00Z")
    assert window_end(NIGHT, moment, MADRID) is None
    assert window_end(NIGHT, moment, jakarta) == at("2026-03-11T08:00:00+07:00")


def test_a_contacts_window_is_kept_and_read_back() -> None:
    given = QuietHoursIn.model_validate({"from": "22:00", "to": "07:00"})
    stored = stored_form(given)
    assert contact_window(stored) == QuietHours(start="22:00", end="07:00")
    assert stored_form(False) == "off" and contact_window("off") == "off"
    assert stored_form(None) is None and contact_window(None) is None
    with pytest.raises(ValueError, match="pattern"):
        QuietHoursIn.model_validate({"from": "9pm", "to": "07:00"})
    with pytest.raises(ValueError, match="another time"):
        QuietHoursIn.model_validate({"from": "7:00", "to": "07:00"})
