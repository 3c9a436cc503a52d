"""The DAG of the metrics tests, run in a child process with StatsD on: two known one-task exports.

``deferred`` (segment devices) waits in the trigger, ``in_worker`` (app events) in the worker; both
write into ``FA_METRICS_DIR`` (a local folder). The connection comes from the environment the test sets.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsAppEventsExportOperator,
    FollowAnalyticsSegmentDevicesExportOperator,
)

if AIRFLOW_V_3:
    from airflow.sdk import DAG
else:
    from airflow import DAG  # type: ignore[no-redef]

#: Seconds between two checks of a pending export (the ready latency is at least one of them).
POLL_INTERVAL = 0.05
SEGMENT_ID = "FASEGMT_metrics42"
APP_ID = "FAAPPLI_metrics42"
DIR = os.environ.get("FA_METRICS_DIR", "/tmp")


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), schedule=None, catchup=False)


def _deferred() -> FollowAnalyticsSegmentDevicesExportOperator:
    return FollowAnalyticsSegmentDevicesExportOperator(
        task_id="deferred",
        segment_id=SEGMENT_ID,
        destination=f"file://{DIR}/devices.csv",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )


with _dag("followanalytics_metrics") as dag:
    in_worker = FollowAnalyticsAppEventsExportOperator(
        task_id="in_worker",
        app_identifier=APP_ID,
        destination=f"file://{DIR}/events.csv",
        deferrable=False,
        poll_interval=POLL_INTERVAL,
    )
    _deferred() >> in_worker

#: Only the deferred export, for the runs with faults.
with _dag("followanalytics_metrics_faults") as faults_dag:
    _deferred()
