"""Build DAGs and timetables the same way on Airflow 2.10 and 3.x (tests may branch on the version)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_provider_followanalytics._compat import AIRFLOW_V_3

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def make_dag(dag_id: str, schedule: Any = None, **kwargs: Any) -> Any:
    """A DAG (``airflow.sdk.DAG`` on Airflow 3, ``airflow.DAG`` on 2) starting 2024-01-01 UTC."""
    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    kwargs.setdefault("start_date", START)
    kwargs.setdefault("catchup", False)
    return DAG(dag_id, schedule=schedule, **kwargs)


def daily_data_intervals() -> Any:
    """A daily UTC timetable whose data interval is the previous day (Airflow 2's @daily)."""
    try:  # Airflow 3.2+
        from airflow.sdk import CronDataIntervalTimetable
    except ImportError:  # 2.10 to 3.1
        from airflow.timetables.interval import CronDataIntervalTimetable
    return CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def asset_or_time(timetable: Any) -> Any:
    """Runs on an asset (dataset) update or on ``timetable``."""
    if AIRFLOW_V_3:
        from airflow.sdk import Asset, AssetOrTimeSchedule

        return AssetOrTimeSchedule(timetable=timetable, assets=[Asset("s3://lake/x")])
    from airflow.datasets import Dataset
    from airflow.timetables.datasets import DatasetOrTimeSchedule

    return DatasetOrTimeSchedule(timetable=timetable, datasets=[Dataset("s3://lake/x")])


def cron_trigger(expression: str) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk import CronTriggerTimetable
    else:
        from airflow.timetables.trigger import CronTriggerTimetable
    return CronTriggerTimetable(expression, timezone="UTC")


def events(*dates: dt.datetime) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk import EventsTimetable
    else:
        from airflow.timetables.events import EventsTimetable
    return EventsTimetable(event_dates=list(dates))
