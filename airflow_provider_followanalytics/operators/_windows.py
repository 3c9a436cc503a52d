"""The time arguments of the export operators: read dates, and refuse an empty window, before any request.

The rules (whole UTC days for periods, a bounded window must end after it starts, an open delta
must start before the run's ``data_interval_end``) are explained in the ``exports`` module docstring.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

#: What a period or ISO-datetime argument accepts (templates render to ``str``).
DateLike = dt.datetime | dt.date | str | int

UTC = dt.timezone.utc
MIN_YEAR, MAX_YEAR = 2000, 2100
#: The advice given for every empty window.
EMPTY_INTERVAL_HINT = (
    "on Airflow 3 a cron schedule's data interval is empty by default: schedule the DAG "
    "with CronDataIntervalTimetable('@daily', timezone='UTC') to get a one-day interval"
)
_DATE_HINT = (
    "expected a datetime, a date, an ISO 8601 string such as '2024-01-01' or "
    "'2024-01-01T00:00:00+00:00', or seconds since the epoch"
)
_BASIC_DATE = re.compile(r"\d{8}")  # what {{ ds_nodash }} renders
_DIGITS = re.compile(r"-?\d+")


def is_blank(value: Any) -> bool:
    """True for an argument not given: ``None`` or a blank string (what an empty template renders)."""
    return value is None or (isinstance(value, str) and not value.strip())


def shown(when: dt.datetime) -> str:
    """A UTC datetime for messages, with microseconds only when there are some."""
    return f"{when:%Y-%m-%d %H:%M:%S}{f'.{when.microsecond:06d}' if when.microsecond else ''} UTC"


def run_interval(context: Any) -> tuple[Any, Any] | None:
    """The ``(data_interval_start, data_interval_end)`` of a task's context, or None without one."""
    getter = getattr(context, "get", None)
    if getter is None:
        return None
    end = getter("data_interval_end")
    return (getter("data_interval_start"), end) if isinstance(end, dt.datetime) else None


def _from_epoch(seconds: int | float, value: Any, name: str) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        hint = " (milliseconds instead of seconds?)" if abs(seconds) > 1e11 else ""
        raise FollowAnalyticsConfigError(
            f"{name}={value!r} is out of range as seconds since the epoch{hint}; {_DATE_HINT}."
        ) from None


def _parse_text(value: str, name: str) -> dt.datetime:
    text = value.strip()
    if _BASIC_DATE.fullmatch(text):  # 8 digits: YYYYMMDD (as epoch seconds it would be 1970, refused anyway)
        try:
            return dt.datetime.strptime(text, "%Y%m%d")
        except ValueError:
            raise FollowAnalyticsConfigError(
                f"{name}={value!r} is not a date (read as YYYYMMDD); {_DATE_HINT}."
            ) from None
    if _DIGITS.fullmatch(text):
        return _from_epoch(int(text), value, name)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text  # Python 3.10 does not read "Z"
    try:
        return dt.datetime.fromisoformat(iso)
    except ValueError:
        raise FollowAnalyticsConfigError(f"{name}={value!r} is not a date: {_DATE_HINT}.") from None


def to_utc(value: Any, name: str) -> dt.datetime:
    """Read a datetime (naive = UTC), a date (midnight UTC), an ISO 8601 string or epoch seconds.

    Digit strings are epoch seconds, except 8 digits, read as ``YYYYMMDD`` (``{{ ds_nodash }}``).
    Years outside 2000-2100 are refused: they are mistakes (milliseconds, a wrong field).

    :return: an aware datetime in UTC.
    """
    if isinstance(value, bool):
        raise FollowAnalyticsConfigError(f"{name}={value!r} is a boolean, not a date; {_DATE_HINT}.")
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
        when = _from_epoch(value, value, name)
    elif isinstance(value, str):
        when = _parse_text(value, name)
    else:
        raise FollowAnalyticsConfigError(f"{name}={value!r} ({type(value).__name__}) is not a date; {_DATE_HINT}.")
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise FollowAnalyticsConfigError(
            f"{name}={value!r} is {shown(when)}: outside {MIN_YEAR}-{MAX_YEAR}, which cannot be meant."
        )
    return when


def epoch_day(value: Any, name: str) -> int:
    """Turn a day into the API's ``sd``/``ed``: integer seconds since the epoch at exactly midnight UTC."""
    when = to_utc(value, name)
    if (when.hour, when.minute, when.second, when.microsecond) != (0, 0, 0, 0):
        raise FollowAnalyticsConfigError(
            f"{name}={value!r} is {shown(when)}, not midnight UTC; FollowAnalytics "
            "periods are whole days starting at 00:00 UTC (pass a date such as '2024-01-01', "
            "'{{ ds }}', or the data interval of a daily schedule in UTC)."
        )
    return int(when.timestamp())


def _refuse_empty_window(start: Any, end: Any, values: tuple[Any, Any], names: tuple[str, str]) -> None:
    """Raise unless the parsed ``end`` is after the parsed ``start``; name the ``values`` as given."""
    if end <= start:
        hint = f" ({EMPTY_INTERVAL_HINT})" if end == start else ""
        raise FollowAnalyticsConfigError(f"{names[1]}={values[1]!r} must be after {names[0]}={values[0]!r}{hint}.")


def period(start: Any, end: Any, *, required: bool) -> tuple[int | None, int | None]:
    """Check ``period_start``/``period_end`` and return ``(sd, ed)``; ``(None, None)`` when optional and not given.

    :param start: first day (see :func:`to_utc`); must be midnight UTC.
    :param end: end day, after ``start``; must be midnight UTC.
    :param required: refuse a missing period (else both or neither).
    """
    has_start, has_end = not is_blank(start), not is_blank(end)
    if not has_start and not has_end:
        if required:
            raise FollowAnalyticsConfigError(
                "period_start and period_end are required for this export (days at midnight UTC), "
                f"got {start!r} and {end!r}."
            )
        return None, None
    if has_start != has_end:
        pairs = [("period_start", start), ("period_end", end)]
        (given, value), (missing, absent) = pairs if has_start else pairs[::-1]
        either = "" if required else ", or neither (the API then uses its default period)"
        raise FollowAnalyticsConfigError(
            f"{missing} is missing (got {absent!r}) while {given}={value!r} is set: "
            f"give both period_start and period_end{either}."
        )
    sd, ed = epoch_day(start, "period_start"), epoch_day(end, "period_end")
    _refuse_empty_window(sd, ed, (start, end), ("period_start", "period_end"))
    return sd, ed


def iso_datetime(value: Any, name: str) -> str | None:
    """Normalise an ISO datetime argument (``updated_since`` ...) to ISO 8601 in UTC; ``None`` if not given."""
    return None if is_blank(value) else to_utc(value, name).isoformat()


def delta_start(value: Any, name: str, interval: tuple[Any, Any] | None = None) -> str | None:
    """Normalise the start of an open delta (``updated_since``) and refuse one at or after the end of the
    run's data ``interval`` (``(data_interval_start, data_interval_end)``, if known); ``None`` if not given."""
    if is_blank(value):
        return None
    start = to_utc(value, name)
    if interval is None or not isinstance(interval[1], dt.datetime) or start < interval[1].astimezone(UTC):
        return start.isoformat()
    if isinstance(interval[0], dt.datetime) and interval[0] == interval[1]:
        why = f"This run's data interval is empty (it starts where it ends); {EMPTY_INTERVAL_HINT}"
    else:
        why = f"Export the changes of the run's data interval with {name}='{{{{ data_interval_start }}}}'"
    raise FollowAnalyticsConfigError(
        f"{name}={value!r} is not before the end of this run's data interval ({shown(interval[1].astimezone(UTC))}): "
        "the delta export would miss the changes of the interval the run covers, and no later run would export "
        f"them. {why}."
    )


def iso_window(since: Any, until: Any, interval: tuple[Any, Any] | None = None) -> tuple[str | None, str | None]:
    """Normalise ``since_date``/``until_date`` (each optional) and refuse ``until <= since``.

    ``since`` without ``until`` is an open delta, checked against the run's data ``interval``
    like ``updated_since``.
    """
    if is_blank(until):
        return delta_start(since, "since_date", interval), None
    until_iso = iso_datetime(until, "until_date")
    if is_blank(since):
        return None, until_iso
    start, end = to_utc(since, "since_date"), to_utc(until, "until_date")
    _refuse_empty_window(start, end, (since, until), ("since_date", "until_date"))
    return start.isoformat(), until_iso
