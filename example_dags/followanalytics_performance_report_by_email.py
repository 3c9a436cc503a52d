"""
### Weekly performance report of several apps, e-mailed by FollowAnalytics

No bucket needed: with `skip_email=False` FollowAnalytics generates the file and e-mails it to
the account of the connection (the account's address, not one you choose). The API then answers
with a sentence instead of a callback URL, e.g. *"Your report is being generated and will be
sent to the email ... when it is completed"*; the operator returns it (XCom `return_value`) and
logs it. There is nothing to wait for or download, so no sensor and no transfer.

The report covers the performance figures (downloads, engagement, crashes) of the apps in
`app_identifiers` over the week that just ended (Sunday 00:00 UTC to Sunday 00:00 UTC, the
run's data interval), as an XLS file that opens in any spreadsheet.

Set up the `followanalytics_default` connection (account e-mail as login, password); pick the
apps with the DAG's params.
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

from airflow_provider_followanalytics.operators.exports import FollowAnalyticsPerformanceExportOperator

with DAG(
    dag_id="followanalytics_performance_report_by_email",
    description="Weekly performance report of FollowAnalytics apps, e-mailed to the account",
    # The data interval is the previous week (Sunday 00:00 UTC to Sunday 00:00 UTC).
    schedule=CronDataIntervalTimetable("@weekly", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 7, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "app_identifiers": Param(
            ["FAAPPLI_123456789", "FAAPPLI_987654321"],
            type="array",
            items={"type": "string"},
            minItems=1,
            description="FollowAnalytics app identifiers",
        ),
        "followanalytics_conn_id": Param(
            "followanalytics_default", type="string", description="FollowAnalytics connection"
        ),
    },
    doc_md=__doc__,
    tags=["followanalytics", "example", "email"],
) as dag:
    email_performance_report = FollowAnalyticsPerformanceExportOperator(
        task_id="email_performance_report",
        app_identifiers="{{ params.app_identifiers | join(',') }}",  # a comma string works as well as a list
        period_start="{{ data_interval_start }}",
        period_end="{{ data_interval_end }}",
        file_format="xls",  # for people: opens in a spreadsheet (the default, csv, suits pipelines)
        skip_email=False,  # FollowAnalytics e-mails the file; the task returns the API's message
        followanalytics_conn_id="{{ params.followanalytics_conn_id }}",
    )
