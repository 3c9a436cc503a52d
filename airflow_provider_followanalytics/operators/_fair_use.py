"""Whether a DAG's schedule can run an export more than once a day, which FollowAnalytics' fair-use
rule asks not to do: the export operators log a warning then (they do not fail).

Imported by the run that needs it, not at DAG parse."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

_ONE_DAY = dt.timedelta(days=1)


def warn_if_scheduled_more_than_daily(operator: Any) -> None:
    """Log one warning when the ``operator``'s DAG is scheduled more often than once a day."""
    dag = operator.dag if operator.has_dag() else None
    try:
        schedule = sub_daily_schedule(getattr(dag, "timetable", None))
    except Exception as exc:  # an unusual custom timetable must never fail the export
        operator.log.debug("Could not tell how often DAG runs are scheduled: %s", exc)
        return
    if schedule is not None:
        operator.log.warning(
            "Fair use: DAG %r is scheduled %s, more often than daily, but FollowAnalytics asks "
            "to call each export API at most once a day. Schedule export DAGs @daily (or less "
            "often) and export deltas with updated_since / since_date.",
            getattr(dag, "dag_id", "?"),
            schedule,
        )


def sub_daily_schedule(timetable: Any) -> str | None:
    """Describe ``timetable`` when it can trigger runs less than a day apart, else ``None``.

    Duck-typed over the timetables of Airflow 2.10 (``_expression``, ``_delta``) and 3.x
    (``expression``, ``delta``, ``timetables``), so that no version-specific import is needed.
    Manual (``None``), ``@once``, asset/dataset-triggered, daily and slower schedules give ``None``.
    """
    if timetable is None:
        return None
    if type(timetable).__name__ == "ContinuousTimetable":
        return "@continuous"
    inner = getattr(timetable, "timetable", None)  # AssetOrTimeSchedule / DatasetOrTimeSchedule
    if inner is not None and inner is not timetable:
        return sub_daily_schedule(inner)
    delta = _attribute(timetable, "delta")
    if delta is not None:
        reference = dt.datetime(2024, 1, 1)  # a relativedelta has a length only from a date
        return f"every {delta}" if reference + delta - reference < _ONE_DAY else None
    events = _attribute(timetable, "event_dates")
    if isinstance(events, list) and len(events) > 1:
        close = any(later - earlier < _ONE_DAY for earlier, later in itertools.pairwise(sorted(events)))
        return "on events less than a day apart" if close else None
    expressions = _cron_expressions(timetable)
    if expressions and _cron_fires_within_a_day(expressions):
        return f"cron {' | '.join(expressions)!r}"
    return None


def _attribute(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)  # Airflow 3 (attrs classes)
    return value if value is not None else getattr(obj, f"_{name}", None)  # Airflow 2


def _cron_expressions(timetable: Any) -> list[str]:
    parts = _attribute(timetable, "timetables")  # MultipleCronTriggerTimetable
    candidates = parts if isinstance(parts, list) else [timetable]
    return [expr for part in candidates if isinstance(expr := _attribute(part, "expression"), str)]


def _cron_fires_within_a_day(expressions: list[str]) -> bool:
    """Whether the union of the cron expressions fires twice within 24 hours, over one year."""
    from croniter import croniter  # an Airflow dependency on 2.10 and 3.x; only needed here

    start = dt.datetime(2023, 12, 31, 23, 59)
    horizon = start + dt.timedelta(days=366)
    fires: set[dt.datetime] = set()
    for expression in expressions:
        schedule = croniter(expression, start)
        previous: dt.datetime | None = None
        for _ in range(1000):
            fire = schedule.get_next(dt.datetime)
            if fire > horizon:
                break
            if previous is not None and fire - previous < _ONE_DAY:
                return True
            fires.add(fire)
            previous = fire
    return any(later - earlier < _ONE_DAY for earlier, later in itertools.pairwise(sorted(fires)))
