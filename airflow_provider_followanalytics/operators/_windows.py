"""Refuse an export window that is empty or ends before it starts, before any request.

A window is checked on parsed UTC datetimes (see ``_params``), with one rule per kind:

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
from typing import Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

#: The advice given for every empty window.
EMPTY_INTERVAL_HINT = (
    "on Airflow 3 a cron schedule's data interval is empty by default: schedule the DAG "
    "with CronDataIntervalTimetable('@daily', timezone='UTC') to get a one-day interval"
)

UTC = dt.timezone.utc


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
    raise FollowAnalyticsConfigError(f"{names[1]}={end_value!r} must be after {names[0]}={start_value!r}{hint}.")


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
