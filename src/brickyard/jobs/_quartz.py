"""Quartz cron expressions, as Databricks job schedules use them, with a time zone.

``seconds minutes hours day-of-month month day-of-week [year]``: each field ``*``, a value, a range ``a-b``, a
step ``a/n``, ``*/n`` or ``a-b/n``, or a list of those; months ``1-12`` or ``JAN``-``DEC``; days of the week
``1-7`` (1 is Sunday) or ``SUN``-``SAT``; exactly one of day-of-month and day-of-week is ``?``; ``L`` in the
day of month is its last day. ``W``, ``#`` and ``nL`` are refused by name. Times are wall-clock times in the
schedule's zone: a time a daylight-saving change skips does not fire that day, a time it repeats fires once.
"""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..core.errors import InvalidParameterValue

MONTHS = {name: i + 1 for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                                 "NOV", "DEC"))}
DAYS = {name: i + 1 for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
SEARCH_DAYS = 366 * 5


def _bad(expression: str, why: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid Quartz Cron Expression {expression[:200]!r}: {why}",
                                 error_code="INVALID_PARAMETER_VALUE")


def _field(expression: str, text: str, low: int, high: int, names: dict[str, int], what: str) -> set[int]:
    out: set[int] = set()

    def value(token: str) -> int:
        token = token.upper()
        if token in names:
            return names[token]
        if not token.isdigit():
            raise _bad(expression, f"{what} {token!r} is not a number{' or a name' if names else ''}")
        number = int(token)
        if not low <= number <= high:
            raise _bad(expression, f"{what} {number} is not from {low} to {high}")
        return number

    for part in text.split(","):
        if not part:
            raise _bad(expression, f"an empty item in the {what} field")
        for mark in ("W", "#"):
            if mark in part.upper():
                raise _bad(expression, f"'{mark}' in the {what} field is not supported")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _bad(expression, f"the step {step_text!r} in the {what} field must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = value(a), value(b)
            if start > end:
                raise _bad(expression, f"the range {base} in the {what} field goes backwards")
        else:
            start = value(base)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return out


class Cron:
    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        if not isinstance(expression, str) or not expression.strip() or len(expression) > 1000:
            raise _bad(str(expression), "give six or seven fields")
        try:
            self.zone = ZoneInfo(timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidParameterValue(f"unknown timezone_id {str(timezone)[:100]!r}; use an IANA name such as "
                                        "Europe/Amsterdam or UTC") from None
        parts = expression.split()
        if len(parts) not in (6, 7):
            raise _bad(expression, f"it has {len(parts)} fields; Quartz needs six or seven "
                                   "(seconds minutes hours day-of-month month day-of-week [year])")
        sec, minute, hour, dom, month, dow = parts[:6]
        if (dom == "?") == (dow == "?"):
            raise _bad(expression, "exactly one of day-of-month and day-of-week must be '?'")
        self.seconds = sorted(_field(expression, sec, 0, 59, {}, "second"))
        self.minutes = sorted(_field(expression, minute, 0, 59, {}, "minute"))
        self.hours = sorted(_field(expression, hour, 0, 23, {}, "hour"))
        self.months = _field(expression, month, 1, 12, MONTHS, "month")
        self.last_day = dom.upper() == "L"
        if "L" in dom.upper() and not self.last_day:
            raise _bad(expression, "only a plain 'L' (the month's last day) is supported in the day-of-month field")
        self.days = None if dom == "?" or self.last_day else _field(expression, dom, 1, 31, {}, "day of month")
        if "L" in dow.upper() and dow.upper() != "L":
            raise _bad(expression, "'L' in the day-of-week field is not supported")
        self.weekdays = None if dow == "?" else ({7} if dow.upper() == "L" else _field(expression, dow, 1, 7, DAYS,
                                                                                      "day of week"))
        self.years = None if len(parts) == 6 or parts[6] == "*" else _field(expression, parts[6], 1970, 2099, {},
                                                                            "year")

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        if self.weekdays is not None:
            return (day.isoweekday() % 7) + 1 in self.weekdays  # Quartz: 1 is Sunday
        if self.last_day:
            return day.day == calendar.monthrange(day.year, day.month)[1]
        return self.days is not None and day.day in self.days

    def next_after(self, moment: dt.datetime) -> dt.datetime | None:
        """The first fire time strictly after ``moment`` (an aware datetime), in UTC; None if there is none in the
        next five years."""
        local = moment.astimezone(self.zone)
        day = local.date()
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                for h in self.hours:
                    for m in self.minutes:
                        for s in self.seconds:
                            wall = dt.datetime(day.year, day.month, day.day, h, m, s, tzinfo=self.zone)
                            if dt.datetime.fromtimestamp(wall.timestamp(), self.zone).replace(tzinfo=None) != \
                                    wall.replace(tzinfo=None):
                                continue  # a wall time that daylight saving skips
                            if wall > local:
                                return wall.astimezone(dt.UTC)
            day += dt.timedelta(days=1)
        return None
