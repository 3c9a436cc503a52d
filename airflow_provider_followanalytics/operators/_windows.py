"""The time arguments of the export operators: read dates, and refuse an empty window, before any request.

Dates come as datetimes (naive = UTC), dates, ISO 8601 strings (rendered templates) or epoch
seconds, and are read into aware UTC datetimes (:func:`to_utc`). A window is checked on those,
with one rule per kind:

* A bounded window (``period_start``/``period_end``, ``since_date``/``until_date``) must end after
  it starts. Equal bounds give an empty export: that is what ``"{{ data_interval_start }}"`` and
  ``"{{ data_interval_end }}"`` render to on Airflow 3 with a plain ``schedule="@daily"``
  (a ``CronTriggerTimetable``, whose data interval is empty: start = end = logical date).
* An open delta (``updated_since``, or ``since_date`` without ``until_date``) asks for what changed
  from a moment until the export runs. A DAG run covers its data interval, so the delta must start
  before the interval's end (``data_interval_end``): a start at or after it exports none of the
  interval the run is for, and the next run starts later again, so those changes are never
  exported. On Airflow 3's plain ``"@daily"``, ``"{{ data_interval_start }}"`` equals
  ``data_interval_end`` and is refused. Without a data interval (a manual run without logical
  date) there is nothing to compare with and the delta is sent as given.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

#: What a period or ISO-datetime argument accepts (templates render to ``str``).
DateLike = dt.datetime | dt.date | str | int

#: The advice given for every empty window.
EMPTY_INTERVAL_HINT = (
    "on Airflow 3 a cron schedule's data interval is empty by default: schedule the DAG "
    "with CronDataIntervalTimetable('@daily', timezone='UTC') to get a one-day interval"
)

UTC = dt.timezone.utc
MIN_YEAR = 2000
MAX_YEAR = 2100
_DATE_HINT = (
    "expected a datetime, a date, an ISO 8601 string such as '2024-01-01' or "
    "'2024-01-01T00:00:00+00:00', or seconds since the epoch"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BASIC_DATE = re.compile(r"\d{8}")  # what {{ ds_nodash }} renders
_DIGITS = re.compile(r"-?\d+")


def _error(message: str) -> FollowAnalyticsConfigError:
    return FollowAnalyticsConfigError(message)


def is_blank(value: Any) -> bool:
    """True for an argument not given: ``None`` or a blank string (what an empty template renders)."""
    return value is None or (isinstance(value, str) and not value.strip())


# ---------------------------------------------------------------------------------- empty windows
def shown(when: dt.datetime) -> str:
    """A UTC datetime for messages, with microseconds only when there are some."""
    return f"{when:%Y-%m-%d %H:%M:%S}{f'.{when.microsecond:06d}' if when.microsecond else ''} UTC"


def refuse_empty_window(start: Any, end: Any, start_value: Any, end_value: Any, names: tuple[str, str]) -> None:
    """Raise unless ``end`` is after ``start`` (both parsed, comparable); name the values as given.

    :param start: the parsed start (datetime or epoch seconds).
    :param end: the parsed end, same type.
    :param start_value: the start as the DAG author gave it (or a template rendered it).
    :param end_value: the end as given.
    :param names: the two arguments' names.
    """
    if end > start:
        return
    hint = f" ({EMPTY_INTERVAL_HINT})" if end == start else ""
    raise _error(f"{names[1]}={end_value!r} must be after {names[0]}={start_value!r}{hint}.")


def refuse_late_delta_start(start: dt.datetime, value: Any, name: str, interval: tuple[Any, Any] | None) -> None:
    """Raise when an open delta starts at or after the end of the run's data interval.

    :param start: the parsed start of the delta (aware, UTC).
    :param value: the start as given, for the message.
    :param name: the argument's name.
    :param interval: the run's ``(data_interval_start, data_interval_end)``; ``None`` (or an
        unknown end) skips the check.
    """
    if interval is None or not isinstance(interval[1], dt.datetime):
        return
    interval_start, interval_end = interval
    end = interval_end.astimezone(UTC)
    if start < end:
        return
    if isinstance(interval_start, dt.datetime) and interval_start == interval_end:
        why = f"This run's data interval is empty (it starts where it ends); {EMPTY_INTERVAL_HINT}"
    else:
        why = f"Export the changes of the run's data interval with {name}='{{{{ data_interval_start }}}}'"
    raise FollowAnalyticsConfigError(
        f"{name}={value!r} is not before the end of this run's data interval ({shown(end)}): the delta "
        f"export would miss the changes of the interval the run covers, and no later run would export "
        f"them. {why}."
    )


def run_interval(context: Any) -> tuple[Any, Any] | None:
    """The ``(data_interval_start, data_interval_end)`` of a task's context, or None without one."""
    getter = getattr(context, "get", None)
    if getter is None:
        return None
    end = getter("data_interval_end")
    return (getter("data_interval_start"), end) if isinstance(end, dt.datetime) else None


# ---------------------------------------------------------------------------------- dates and windows
def _from_epoch(seconds: int | float, value: Any, name: str) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        hint = " (milliseconds instead of seconds?)" if abs(seconds) > 1e11 else ""
        raise _error(f"{name}={value!r} is out of range as seconds since the epoch{hint}; {_DATE_HINT}.") from None


def _parse_text(text: str, value: Any, name: str) -> dt.datetime:
    text = text.strip()
    if _BASIC_DATE.fullmatch(text):  # 8 digits: YYYYMMDD (as epoch seconds it would be 1970, refused anyway)
        try:
            day = dt.datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            raise _error(f"{name}={value!r} is not a date (read as YYYYMMDD); {_DATE_HINT}.") from None
        return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    if _DIGITS.fullmatch(text):
        return _from_epoch(int(text), value, name)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text  # Python 3.10 does not read "Z"
    try:
        if _ISO_DATE.fullmatch(iso):
            day = dt.date.fromisoformat(iso)
            return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
        return dt.datetime.fromisoformat(iso)
    except ValueError:
        raise _error(f"{name}={value!r} is not a date: {_DATE_HINT}.") from None


def to_utc(value: Any, name: str) -> dt.datetime:
    """Read a datetime (naive = UTC), a date (midnight UTC), an ISO 8601 string or epoch seconds.

    Digit strings are epoch seconds, except 8 digits, read as ``YYYYMMDD`` (``{{ ds_nodash }}``).
    Years outside 2000-2100 are refused: they are mistakes (milliseconds, a wrong field).

    :return: an aware datetime in UTC.
    """
    if isinstance(value, bool):
        raise _error(f"{name}={value!r} is a boolean, not a date; {_DATE_HINT}.")
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None and value.utcoffset() is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, (int, float)):
        when = _from_epoch(value, value, name)
    elif isinstance(value, str):
        when = _parse_text(value, value, name)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    else:
        raise _error(f"{name}={value!r} ({type(value).__name__}) is not a date; {_DATE_HINT}.")
    when = when.astimezone(UTC)
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise _error(f"{name}={value!r} is {shown(when)}: outside {MIN_YEAR}-{MAX_YEAR}, which cannot be meant.")
    return when


def epoch_day(value: Any, name: str) -> int:
    """Turn a day into the API's ``sd``/``ed``: integer seconds since the epoch at exactly midnight UTC."""
    when = to_utc(value, name)
    if (when.hour, when.minute, when.second, when.microsecond) != (0, 0, 0, 0):
        raise _error(
            f"{name}={value!r} is {shown(when)}, not midnight UTC; FollowAnalytics "
            "periods are whole days starting at 00:00 UTC (pass a date such as '2024-01-01', "
            "'{{ ds }}', or the data interval of a daily schedule in UTC)."
        )
    return int(when.timestamp())


def period(
    start: Any,
    end: Any,
    *,
    required: bool,
    names: tuple[str, str] = ("period_start", "period_end"),
) -> tuple[int | None, int | None]:
    """Check a period and return ``(sd, ed)``; ``(None, None)`` when optional and not given.

    :param start: first day (see :func:`to_utc`); must be midnight UTC.
    :param end: end day, after ``start``; must be midnight UTC.
    :param required: refuse a missing period (else both or neither).
    """
    start_name, end_name = names
    has_start, has_end = not is_blank(start), not is_blank(end)
    if not has_start and not has_end:
        if required:
            raise _error(
                f"{start_name} and {end_name} are required for this export (days at midnight UTC), "
                f"got {start!r} and {end!r}."
            )
        return None, None
    if has_start != has_end:
        if has_start:
            given, shown, missing, absent = start_name, start, end_name, end
        else:
            given, shown, missing, absent = end_name, end, start_name, start
        either = "" if required else ", or neither (the API then uses its default period)"
        raise _error(
            f"{missing} is missing (got {absent!r}) while {given}={shown!r} is set: "
            f"give both {start_name} and {end_name}{either}."
        )
    sd, ed = epoch_day(start, start_name), epoch_day(end, end_name)
    refuse_empty_window(sd, ed, start, end, names)
    return sd, ed


def iso_datetime(value: Any, name: str) -> str | None:
    """Normalise an ISO datetime argument (``updated_since`` ...) to ISO 8601 in UTC; ``None`` if not given."""
    if is_blank(value):
        return None
    return to_utc(value, name).isoformat()


def delta_start(value: Any, name: str, interval: tuple[Any, Any] | None = None) -> str | None:
    """Normalise the start of an open delta (``updated_since``) and refuse one at or after the run's
    data interval end (see ``_windows``); ``None`` if not given.

    :param interval: the run's ``(data_interval_start, data_interval_end)``, if known.
    """
    if is_blank(value):
        return None
    start = to_utc(value, name)
    refuse_late_delta_start(start, value, name, interval)
    return start.isoformat()


def iso_window(
    since: Any,
    until: Any,
    names: tuple[str, str] = ("since_date", "until_date"),
    interval: tuple[Any, Any] | None = None,
) -> tuple[str | None, str | None]:
    """Normalise ``since_date``/``until_date`` (each optional) and refuse ``until <= since``.

    ``since`` without ``until`` is an open delta, checked against the run's data ``interval``
    like ``updated_since``.
    """
    if is_blank(until):
        return delta_start(since, names[0], interval), None
    until_iso = iso_datetime(until, names[1])
    if is_blank(since):
        return None, until_iso
    start, end = to_utc(since, names[0]), to_utc(until, names[1])
    refuse_empty_window(start, end, since, until, names)
    return start.isoformat(), until_iso
