"""
### Daily raw events of an app into Google Cloud Storage, gzipped

One run a day exports the raw events (one row per event) of one app for the previous day:

1. **start_export** asks FollowAnalytics for the app's events between `since_date` and
   `until_date`, set to the run's data interval (00:00 UTC of the previous day to 00:00 UTC
   today): a *delta* export, as the fair-use policy asks, instead of all events every day.
2. **wait_for_export** waits for the file in the triggerer (`deferrable=True`): no worker slot
   is held while FollowAnalytics generates it.
3. **upload_to_gcs** streams the file into
   `gs://<gcs_bucket>/<gcs_prefix>/app-events/<app>/<day>.csv.gz`, compressing on the fly
   (`gzip=True`; the object is plain gzip, Content-Type `application/gzip`, that decompresses to
   the exact CSV). A rerun of the same day overwrites its own object.

Set up the `followanalytics_default` connection (account e-mail as login, password) and
`google_cloud_default`; pick the app and bucket with the DAG's params (Trigger DAG w/ config).
Needs the Google extra: `pip install 'airflow-provider-followanalytics[google]'`.
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3.0+
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG
    from airflow.models.param import Param

# CronDataIntervalTimetable is in airflow.sdk from Airflow 3.2; 2.10 to 3.1 keep it in airflow.timetables.
try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_followanalytics.operators.exports import FollowAnalyticsAppEventsExportOperator
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_gcs import FollowAnalyticsToGCSOperator

with DAG(
    dag_id="followanalytics_app_events_to_gcs",
    description="Daily raw events of a FollowAnalytics app, gzipped into GCS",
    # Fair use: each export API at most once a day. A data-interval timetable makes
    # data_interval_start..end cover the previous day (Airflow 3's plain "@daily" has an empty interval).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "app_identifier": Param("FAAPPLI_123456789", type="string", description="FollowAnalytics app identifier"),
        "gcs_bucket": Param("my-data-lake", type="string", description="Destination bucket (name only, no gs://)"),
        "gcs_prefix": Param("followanalytics", type="string", description="Object name prefix in the bucket"),
        "followanalytics_conn_id": Param(
            "followanalytics_default", type="string", description="FollowAnalytics connection"
        ),
        "gcp_conn_id": Param("google_cloud_default", type="string", description="Google Cloud connection"),
    },
    doc_md=__doc__,
    tags=["followanalytics", "example", "gcs"],
) as dag:
    start_export = FollowAnalyticsAppEventsExportOperator(
        task_id="start_export",
        app_identifier="{{ params.app_identifier }}",
        # The previous day, as ISO 8601 datetimes in UTC. Only these events leave FollowAnalytics.
        since_date="{{ data_interval_start }}",
        until_date="{{ data_interval_end }}",
        followanalytics_conn_id="{{ params.followanalytics_conn_id }}",
    )

    wait_for_export = ExportReadySensor(
        task_id="wait_for_export",
        callback_url=start_export.output,  # the callback URL that start_export returned
        followanalytics_conn_id="{{ params.followanalytics_conn_id }}",
        deferrable=True,
        poke_interval=60,  # in the triggerer: one small GET a minute, no worker slot held
        timeout=2 * 60 * 60,
    )

    upload_to_gcs = FollowAnalyticsToGCSOperator(
        task_id="upload_to_gcs",
        callback_url=wait_for_export.output,
        bucket_name="{{ params.gcs_bucket }}",
        # Named after the data interval's day, not {{ ds }}: a manual run's logical date is the
        # moment it was triggered, while its data interval is still the last complete day.
        object_name=(
            "{{ params.gcs_prefix }}/app-events/{{ params.app_identifier }}/{{ data_interval_start | ds }}.csv.gz"
        ),
        gzip=True,  # compressed while streaming; name the object .gz so readers know
        gcp_conn_id="{{ params.gcp_conn_id }}",
        followanalytics_conn_id="{{ params.followanalytics_conn_id }}",
    )

    start_export >> wait_for_export >> upload_to_gcs
