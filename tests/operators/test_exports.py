"""Export operators against the emulator, over real sockets: what is sent and returned, and how it is templated."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsAppDevicesExportOperator,
    FollowAnalyticsAppEventsExportOperator,
    FollowAnalyticsEventAnalysisExportOperator,
    FollowAnalyticsEventContextExportOperator,
    FollowAnalyticsExportOperator,
    FollowAnalyticsPerformanceExportOperator,
    FollowAnalyticsSegmentDevicesExportOperator,
    FollowAnalyticsUserMetricsExportOperator,
)
from tests.fixtures import EMAIL
from tests.operators._exports import JAN_1, UTC, only_export

pytestmark = pytest.mark.usefixtures("fa_conn")


DAY = 86400
EMAIL_MESSAGE = f"Your report is being generated and will be sent to the email {EMAIL} when it is completed"


# (operator, arguments, path before the suffix, query without skip_email)
TYPED_CASES = [
    pytest.param(
        FollowAnalyticsSegmentDevicesExportOperator,
        {
            "segment_id": "FASEGMT_abcd12",
            "fields": ["current_user_id", "device_id"],
            "updated_since": dt.datetime(2024, 1, 2, 3, 4, 5),  # naive: UTC
        },
        "/segments/FASEGMT_abcd12/devices_export",
        {"fields": "current_user_id,device_id", "updated_since": "2024-01-02T03:04:05+00:00"},
        id="segment_devices",
    ),
    pytest.param(
        FollowAnalyticsAppDevicesExportOperator,
        {
            "app_identifier": "FAAPPLI_123456789",
            "fields": "device_id, current_user_id",
            "current_user_ids": ["user 1", "user-2"],
            "device_ids": ("dev-1", "dev-2"),
            "segment_ids": "FASEGMT_a,FASEGMT_b",
            "updated_since": "2024-01-01T10:00:00+02:00",
        },
        "/api/apps/FAAPPLI_123456789/devices_export",
        {
            "fields": "device_id,current_user_id",
            "current_user_ids": "user 1,user-2",
            "device_ids": "dev-1,dev-2",
            "segment_ids": "FASEGMT_a,FASEGMT_b",
            "updated_since": "2024-01-01T08:00:00+00:00",
        },
        id="app_devices",
    ),
    pytest.param(
        FollowAnalyticsAppDevicesExportOperator,
        {"app_identifier": "FAAPPLI_1", "fields": [], "device_ids": "", "updated_since": None},
        "/api/apps/FAAPPLI_1/devices_export",
        {},  # empty optional lists are left out
        id="app_devices_no_filters",
    ),
    pytest.param(
        FollowAnalyticsAppEventsExportOperator,
        {
            "app_identifier": "FAAPPLI_1",
            "fields": ["event_name"],
            "since_date": dt.date(2024, 1, 1),
            "until_date": "2024-01-02T00:00:00Z",
            "device_ids": ["d1"],
            "user_ids": "u1, u2",
            "session_ids": [11, 12],
        },
        "/api/apps/FAAPPLI_1/events_export",
        {
            "fields": "event_name",
            "since_date": "2024-01-01T00:00:00+00:00",
            "until_date": "2024-01-02T00:00:00+00:00",
            "device_ids": "d1",
            "user_ids": "u1,u2",
            "session_ids": "11,12",
        },
        id="app_events",
    ),
    pytest.param(
        FollowAnalyticsPerformanceExportOperator,
        {
            "app_identifiers": "FAAPPLI_1, FAAPPLI_2",
            "period_start": dt.date(2024, 1, 1),
            "period_end": dt.datetime(2024, 1, 8, tzinfo=UTC),
        },
        "/api/performance_export",
        {"apps": "FAAPPLI_1,FAAPPLI_2", "sd": str(JAN_1), "ed": str(JAN_1 + 7 * DAY)},
        id="performance",
    ),
    pytest.param(
        FollowAnalyticsUserMetricsExportOperator,
        {"app_identifier": "FAAPPLI_1", "period_start": "2024-01-01", "period_end": JAN_1 + DAY},
        "/api/apps/FAAPPLI_1/analytics/download_metrics",
        {"apps": "FAAPPLI_1", "sd": str(JAN_1), "ed": str(JAN_1 + DAY)},
        id="user_metrics",
    ),
    pytest.param(
        FollowAnalyticsEventAnalysisExportOperator,
        {"app_identifier": "FAAPPLI_1", "period_start": "20240101", "period_end": "2024-01-03T00:00:00+00:00"},
        "/api/events_export",
        {"app": "FAAPPLI_1", "sd": str(JAN_1), "ed": str(JAN_1 + 2 * DAY)},
        id="event_analysis",
    ),
    pytest.param(
        FollowAnalyticsEventAnalysisExportOperator,
        {"app_identifier": "FAAPPLI_1"},
        "/api/events_export",
        {"app": "FAAPPLI_1"},  # no period: the API's default (last 6 days)
        id="event_analysis_default_period",
    ),
    pytest.param(
        FollowAnalyticsEventContextExportOperator,
        {"app_identifier": "FAAPPLI_1", "event_id": "42", "period_start": str(JAN_1), "period_end": "2024-01-02"},
        "/api/event_details_export",
        {"app": "FAAPPLI_1", "event_id": "42", "sd": str(JAN_1), "ed": str(JAN_1 + DAY)},
        id="event_context",
    ),
    pytest.param(
        FollowAnalyticsEventContextExportOperator,
        {"app_identifier": "FAAPPLI_1", "event_id": 7},
        "/api/event_details_export",
        {"app": "FAAPPLI_1", "event_id": "7"},
        id="event_context_default_period",
    ),
    pytest.param(
        FollowAnalyticsExportOperator,
        {
            "endpoint": "/api/apps/FAAPPLI_1/devices_export",
            "query_params": {"fields": ["device_id", "current_user_id"], "dry": False, "unset": None, "n": 3},
        },
        "/api/apps/FAAPPLI_1/devices_export",
        {"fields": "device_id,current_user_id", "dry": "false", "n": "3"},
        id="generic",
    ),
]


@pytest.mark.parametrize("skip_email", [True, False], ids=["callback", "email"])
@pytest.mark.parametrize(("operator", "arguments", "path", "query"), TYPED_CASES)
def test_operator_sends_exact_request_and_returns_delivery(
    emulator: FollowAnalyticsEmulator,
    operator: type[FollowAnalyticsExportOperator],
    arguments: dict[str, Any],
    path: str,
    query: dict[str, str],
    skip_email: bool,
) -> None:
    op = operator(task_id="export", skip_email=skip_email, **arguments)

    result = op.execute(context={})

    request = only_export(emulator)
    assert request.method == "GET"
    assert request.route == "export"
    assert request.path == f"{path}.csv"
    assert request.query == {**query, "skip_email": "true" if skip_email else "false"}
    if skip_email:
        assert result.startswith(f"{emulator.url}/api/exports/download_url?export_token=")
    else:
        assert result == EMAIL_MESSAGE


def test_returned_callback_url_is_the_live_export(emulator: FollowAnalyticsEmulator) -> None:
    url = FollowAnalyticsPerformanceExportOperator(
        task_id="perf", app_identifiers=["FAAPPLI_1"], period_start="2024-01-01", period_end="2024-01-02"
    ).execute(context={})

    assert FollowAnalyticsHook().get_export_status(url) == "ready"


@pytest.mark.parametrize("file_format", ["xls", " XLS ", "csv"])
def test_file_format_is_the_path_suffix(emulator: FollowAnalyticsEmulator, file_format: str) -> None:
    FollowAnalyticsSegmentDevicesExportOperator(
        task_id="seg", segment_id="FASEGMT_abcd12", file_format=file_format
    ).execute(context={})

    assert only_export(emulator).path == f"/segments/FASEGMT_abcd12/devices_export.{file_format.strip().lower()}"


def test_endpoint_override_keeps_identifier_encoded(emulator: FollowAnalyticsEmulator) -> None:
    FollowAnalyticsSegmentDevicesExportOperator(
        task_id="seg", segment_id="FASEGMT_abcd12", endpoint="/api/segments/{segment_id}/devices_export"
    ).execute(context={})

    assert only_export(emulator).path == "/api/segments/FASEGMT_abcd12/devices_export.csv"


def test_log_names_the_export_and_period_but_hides_the_token(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture
) -> None:
    url = FollowAnalyticsUserMetricsExportOperator(
        task_id="metrics", app_identifier="FAAPPLI_1", period_start="2024-01-01", period_end="2024-01-02"
    ).execute(context={})

    token = url.split("export_token=")[1]
    messages = "\n".join(r.getMessage() for r in task_log.records)
    assert "user metrics export (app 'FAAPPLI_1', period 2024-01-01 to 2024-01-02" in messages
    assert "export_token=***" in messages
    assert token not in messages


def test_params_without_query_params_warns_at_construction(task_log: pytest.LogCaptureFixture) -> None:
    def warnings() -> list[str]:
        return [r.getMessage() for r in task_log.records if r.levelno == logging.WARNING]

    FollowAnalyticsExportOperator(task_id="any", endpoint="/api/performance_export", params={"apps": "FAAPPLI_1"})
    (warning,) = warnings()
    assert "FollowAnalyticsExportOperator 'any' got params= but no query_params=" in warning
    assert "Put the export's query parameters in query_params={...}" in warning

    task_log.clear()
    FollowAnalyticsExportOperator(  # params used by a template of query_params: fine
        task_id="templated", endpoint="/api/performance_export", params={"a": 1}, query_params={"x": "{{ params.a }}"}
    )
    FollowAnalyticsSegmentDevicesExportOperator(task_id="seg", segment_id="FASEGMT_1", params={"a": 1})
    assert warnings() == []


# ------------------------------------------------------------------------------ templating
def _dag(native: bool) -> Any:
    from airflow_provider_followanalytics._compat import AIRFLOW_V_3

    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    return DAG(
        f"render_native_{native}",
        schedule=None,
        start_date=dt.datetime(2024, 1, 1, tzinfo=UTC),
        render_template_as_native_obj=native,
    )


@pytest.mark.parametrize("native", [True, False], ids=["native", "text"])
def test_templated_lists_and_dates_render_natively_or_as_text(emulator: FollowAnalyticsEmulator, native: bool) -> None:
    import pendulum

    with _dag(native):
        op = FollowAnalyticsPerformanceExportOperator(
            task_id="perf",
            app_identifiers="{{ apps }}",
            period_start="{{ data_interval_start }}",
            period_end="{{ data_interval_end }}",
        )
    context = {
        "apps": ["FAAPPLI_1", "FAAPPLI_2"],
        "data_interval_start": pendulum.datetime(2024, 1, 1, tz="UTC"),
        "data_interval_end": pendulum.datetime(2024, 1, 2, tz="UTC"),
    }

    op.render_template_fields(context)
    # native: a list and datetimes; text: "['FAAPPLI_1', 'FAAPPLI_2']" and ISO strings
    assert isinstance(op.app_identifiers, list) is native
    op.execute(context={})

    assert only_export(emulator).query == {
        "apps": "FAAPPLI_1,FAAPPLI_2",
        "sd": str(JAN_1),
        "ed": str(JAN_1 + DAY),
        "skip_email": "true",
    }


def test_every_argument_is_templated() -> None:
    expected = {
        FollowAnalyticsExportOperator: {"endpoint", "query_params"},
        FollowAnalyticsSegmentDevicesExportOperator: {"segment_id", "fields", "updated_since"},
        FollowAnalyticsAppDevicesExportOperator: {
            "app_identifier",
            "fields",
            "current_user_ids",
            "device_ids",
            "segment_ids",
            "updated_since",
        },
        FollowAnalyticsAppEventsExportOperator: {
            "app_identifier",
            "fields",
            "since_date",
            "until_date",
            "device_ids",
            "user_ids",
            "session_ids",
        },
        FollowAnalyticsPerformanceExportOperator: {"app_identifiers", "period_start", "period_end"},
        FollowAnalyticsUserMetricsExportOperator: {"app_identifier", "period_start", "period_end"},
        FollowAnalyticsEventAnalysisExportOperator: {"app_identifier", "period_start", "period_end"},
        FollowAnalyticsEventContextExportOperator: {"app_identifier", "event_id", "period_start", "period_end"},
    }
    common = {"endpoint", "file_format", "skip_email", "followanalytics_conn_id", "destination", "destination_conn_id"}
    for operator, fields in expected.items():
        assert set(operator.template_fields) == fields | common, operator.__name__
        assert "params" not in operator.template_fields
