"""Export operators against the emulator, over real sockets: what is sent, what is refused."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, RecordedRequest
from airflow_provider_followanalytics.exceptions import FollowAnalyticsAPIError, FollowAnalyticsConfigError
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

pytestmark = pytest.mark.usefixtures("fa_conn")

UTC = dt.timezone.utc
JAN_1 = 1704067200  # 2024-01-01T00:00:00Z
DAY = 86400
EMAIL_MESSAGE = f"Your report is being generated and will be sent to the email {EMAIL} when it is completed"


def only_export(emulator: FollowAnalyticsEmulator) -> RecordedRequest:
    """The one export request the emulator received (the login aside)."""
    exports = [r for r in emulator.requests if r.route != "login"]
    assert len(exports) == 1, [(r.method, r.path) for r in emulator.requests]
    return exports[0]


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


# ------------------------------------------------------------------------------ bad input
GOOD = {
    FollowAnalyticsExportOperator: {"endpoint": "/api/performance_export"},
    FollowAnalyticsSegmentDevicesExportOperator: {"segment_id": "FASEGMT_abcd12"},
    FollowAnalyticsAppDevicesExportOperator: {"app_identifier": "FAAPPLI_1"},
    FollowAnalyticsAppEventsExportOperator: {"app_identifier": "FAAPPLI_1"},
    FollowAnalyticsPerformanceExportOperator: {
        "app_identifiers": ["FAAPPLI_1"],
        "period_start": "2024-01-01",
        "period_end": "2024-01-02",
    },
    FollowAnalyticsUserMetricsExportOperator: {
        "app_identifier": "FAAPPLI_1",
        "period_start": "2024-01-01",
        "period_end": "2024-01-02",
    },
    FollowAnalyticsEventAnalysisExportOperator: {"app_identifier": "FAAPPLI_1"},
    FollowAnalyticsEventContextExportOperator: {"app_identifier": "FAAPPLI_1", "event_id": 42},
}
Perf = FollowAnalyticsPerformanceExportOperator
Metrics = FollowAnalyticsUserMetricsExportOperator
Analysis = FollowAnalyticsEventAnalysisExportOperator
Context_ = FollowAnalyticsEventContextExportOperator
AppDevices = FollowAnalyticsAppDevicesExportOperator
AppEvents = FollowAnalyticsAppEventsExportOperator
Segment = FollowAnalyticsSegmentDevicesExportOperator
Generic = FollowAnalyticsExportOperator

# (operator, bad arguments, part of the expected message: it names the value)
BAD_CASES = [
    (
        Perf,
        {"period_start": "2024-01-01T12:00:00+00:00"},
        "period_start='2024-01-01T12:00:00+00:00' is 2024-01-01 12:00:00 UTC, not midnight UTC",
    ),
    (
        Perf,
        {"period_start": "2024-01-01T00:00:00+02:00"},
        "period_start='2024-01-01T00:00:00+02:00' is 2023-12-31 22:00:00 UTC, not midnight UTC",
    ),
    (
        Perf,
        {"period_end": dt.datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC)},
        "period_end=datetime.datetime(2024, 1, 2, 0, 0, 1, tzinfo=datetime.timezone.utc) "
        "is 2024-01-02 00:00:01 UTC, not midnight",
    ),
    (
        Perf,
        {"period_start": JAN_1 + 0.5},
        f"period_start={JAN_1 + 0.5!r} is 2024-01-01 00:00:00.500000 UTC, not midnight UTC",
    ),
    (
        Perf,
        {"period_start": "2024-01-03", "period_end": "2024-01-02"},
        "period_end='2024-01-02' must be after period_start='2024-01-03'",
    ),
    (
        Metrics,
        {"period_start": "2024-01-02", "period_end": "2024-01-02"},
        "period_end='2024-01-02' must be after period_start='2024-01-02' (on Airflow 3",
    ),
    (
        Analysis,
        {"period_start": "2024-01-01"},
        "period_end is missing (got None) while period_start='2024-01-01' is set: "
        "give both period_start and period_end, or neither",
    ),
    (Context_, {"period_end": "2024-01-02"}, "period_start is missing (got None) while period_end='2024-01-02' is set"),
    (
        Metrics,
        {"period_start": None, "period_end": None},
        "period_start and period_end are required for this export (days at midnight UTC), got None and None",
    ),
    (
        Perf,
        {"period_end": ""},
        "period_end is missing (got '') while period_start='2024-01-01' is set: give both period_start and period_end.",
    ),
    (
        Perf,
        {"period_start": "yesterday"},
        "period_start='yesterday' is not a date: expected a datetime, a date, an ISO 8601 string",
    ),
    (Perf, {"period_start": "2024-02-30"}, "period_start='2024-02-30' is not a date"),
    (Perf, {"period_start": True}, "period_start=True is a boolean, not a date"),
    (Perf, {"period_start": [2024, 1, 1]}, "period_start=[2024, 1, 1] (list) is not a date"),
    (
        Perf,
        {"period_start": JAN_1 * 1000},
        f"period_start={JAN_1 * 1000} is out of range as seconds since the epoch (milliseconds instead of seconds?)",
    ),
    (Perf, {"period_end": "2101-01-01"}, "period_end='2101-01-01' is 2101-01-01 00:00:00 UTC: outside 2000-2100"),
    (Perf, {"period_start": "1999-12-31"}, "period_start='1999-12-31' is 1999-12-31 00:00:00 UTC: outside 2000-2100"),
    (Perf, {"period_start": "20241301"}, "period_start='20241301' is not a date (read as YYYYMMDD)"),
    (Context_, {"event_id": "4.2"}, "event_id='4.2' is not an integer (str given); expected a positive integer id"),
    (Context_, {"event_id": True}, "event_id=True is not an integer (bool given); expected a positive integer id"),
    (Context_, {"event_id": 0}, "event_id=0 is invalid; expected a positive integer id"),
    (Context_, {"event_id": None}, "event_id=None is not an integer (NoneType given)"),
    (
        Analysis,
        {"app_identifier": ""},
        "app_identifier must be a non-empty identifier such as 'FAAPPLI_123456789', got ''",
    ),
    (
        Metrics,
        {"app_identifier": "   "},
        "app_identifier must be a non-empty identifier such as 'FAAPPLI_123456789', got '   '",
    ),
    (
        AppDevices,
        {"app_identifier": None},
        "app_identifier must be an identifier string such as 'FAAPPLI_123456789', got None",
    ),
    (
        Segment,
        {"segment_id": "../../api/login"},
        "segment_id '../../api/login' is not a FollowAnalytics identifier: it contains '/'",
    ),
    (
        AppEvents,
        {"app_identifier": "FAAPPLI 1"},
        "app_identifier 'FAAPPLI 1' is not a FollowAnalytics identifier: it contains whitespace",
    ),
    (
        Analysis,
        {"app_identifier": "FA\x00APP"},
        "app_identifier 'FA\\x00APP' is not a FollowAnalytics identifier: it contains a control character (U+0000)",
    ),
    (Perf, {"app_identifiers": []}, "app_identifiers needs at least one value such as 'FAAPPLI_123456789', got []"),
    (Perf, {"app_identifiers": " "}, "app_identifiers needs at least one value such as 'FAAPPLI_123456789', got ' '"),
    (
        Perf,
        {"app_identifiers": ["FAAPPLI_1", "bad/one"]},
        "app_identifiers item 'bad/one' is not a FollowAnalytics identifier: it contains '/'",
    ),
    (Segment, {"fields": "a,,b"}, "fields='a,,b' has an empty item"),
    (Segment, {"fields": {"a": 1}}, "fields must be a list or a comma-separated string, got {'a': 1} (dict)"),
    (Segment, {"fields": "[a, b]"}, "fields='[a, b]' looks like a list but cannot be read as one"),
    (AppEvents, {"user_ids": ["a,b"]}, "user_ids item 'a,b' contains ','"),
    (AppDevices, {"device_ids": ["dev 1"]}, "device_ids item 'dev 1' contains whitespace"),
    (Segment, {"updated_since": "last week"}, "updated_since='last week' is not a date"),
    (AppDevices, {"updated_since": 0}, "updated_since=0 is 1970-01-01 00:00:00 UTC: outside 2000-2100"),
    (
        AppEvents,
        {"since_date": "2024-01-03", "until_date": "2024-01-02T23:59:59Z"},
        "until_date='2024-01-02T23:59:59Z' must be after since_date='2024-01-03'",
    ),
    (
        AppEvents,
        {"since_date": "2024-01-02", "until_date": "2024-01-02T00:00:00Z"},
        "until_date='2024-01-02T00:00:00Z' must be after since_date='2024-01-02' (on Airflow 3 a cron schedule's",
    ),
    (Segment, {"file_format": "pdf"}, "file_format='pdf' is not supported; expected 'csv' (UTF-8) or 'xls'"),
    (Analysis, {"file_format": None}, "file_format=None is not supported"),
    (Perf, {"skip_email": "maybe"}, "skip_email='maybe' must be true or false (str given)"),
    (Perf, {"followanalytics_conn_id": ""}, "followanalytics_conn_id must be a non-empty connection id, got ''"),
    (
        AppDevices,
        {"endpoint": "/api/apps/devices_export"},
        "endpoint '/api/apps/devices_export' has no {app_identifier} placeholder",
    ),
    (
        AppDevices,
        {"endpoint": "/api/apps/{app_identifier}/{kind}"},
        "endpoint '/api/apps/{app_identifier}/{kind}' has an unknown placeholder",
    ),
    (Perf, {"endpoint": "/api/../login"}, "endpoint '/api/../login' must be a plain path"),
    (
        Generic,
        {"endpoint": "api/performance_export"},
        "endpoint 'api/performance_export' must be an API path starting with '/'",
    ),
    (
        Generic,
        {"endpoint": "/api/performance_export?apps=x"},
        "endpoint '/api/performance_export?apps=x' must be a plain path",
    ),
    (
        Generic,
        {"query_params": {"skip_email": "false"}},
        "query_params must not contain 'skip_email': use the operator's skip_email argument",
    ),
    (Generic, {"query_params": ["fields"]}, "query_params must be a dict, got ['fields'] (list)"),
    (
        Generic,
        {"query_params": {"filter": {"a": 1}}},
        "query_params['filter']={'a': 1} (dict) cannot be sent in a query string",
    ),
]


def _bad_case_id(case: tuple[Any, dict[str, Any], str]) -> str:
    operator, arguments, _ = case
    return f"{operator.__name__.removeprefix('FollowAnalytics').removesuffix('ExportOperator')}-{arguments!r}"[:60]


@pytest.mark.parametrize(("operator", "arguments", "message"), BAD_CASES, ids=[_bad_case_id(c) for c in BAD_CASES])
def test_bad_input_is_refused_at_parse_and_before_any_request(
    emulator: FollowAnalyticsEmulator, operator: type[Any], arguments: dict[str, Any], message: str
) -> None:
    # A literal mistake fails when the DAG file is parsed ...
    with pytest.raises(FollowAnalyticsConfigError) as at_parse:
        operator(task_id="bad", **{**GOOD[operator], **arguments})
    assert message in str(at_parse.value)

    # ... and the same value arriving at run time (rendered template, XCom) fails before any request.
    op = operator(task_id="bad", **GOOD[operator])
    for name, value in arguments.items():
        setattr(op, name, value)
    with pytest.raises(FollowAnalyticsConfigError) as at_run:
        op.execute(context={})
    assert message in str(at_run.value)
    assert emulator.requests == []


def test_bad_cases_cover_every_operator() -> None:
    assert len(BAD_CASES) >= 25
    assert {case[0] for case in BAD_CASES} == set(GOOD)


def test_templated_values_are_checked_after_rendering(emulator: FollowAnalyticsEmulator) -> None:
    op = FollowAnalyticsUserMetricsExportOperator(
        task_id="metrics", app_identifier="{{ app }}", period_start="{{ ts }}", period_end="{{ next_ds }}"
    )  # nothing to check yet: every value is a template

    op.render_template_fields({"app": "FAAPPLI_1", "ts": "2024-01-01T06:00:00+00:00", "next_ds": "2024-01-02"})
    with pytest.raises(
        FollowAnalyticsConfigError, match=r"period_start='2024-01-01T06:00:00\+00:00' is 2024-01-01 06:00"
    ):
        op.execute(context={})
    assert emulator.requests == []


def test_a_literal_half_is_checked_at_parse_while_the_other_half_is_templated() -> None:
    with pytest.raises(FollowAnalyticsConfigError, match="period_end='2024-01-02T01:00:00' is 2024-01-02 01:00:00 UTC"):
        FollowAnalyticsPerformanceExportOperator(
            task_id="perf",
            app_identifiers="{{ var.value.apps }}",
            period_start="{{ ds }}",
            period_end="2024-01-02T01:00:00",
        )
    with pytest.raises(FollowAnalyticsConfigError, match="period_end is required for this export"):
        FollowAnalyticsPerformanceExportOperator(
            task_id="perf", app_identifiers=["FAAPPLI_1"], period_start="{{ ds }}", period_end=None
        )


# ------------------------------------------------------------------------------ hostile identifiers
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("../../api/login", "'/'"),
        ("FAAPPLI_1/../../login", "'/'"),
        ("..", "'..'"),
        ("FAAPPLI_1?sd=0", "'?'"),
        ("FAAPPLI_1#x", "'#'"),
        ("FA APPLI", "whitespace"),
        ("FAAPPLI_1\u3000x", "whitespace"),  # ideographic space
        ("%2e%2e%2fapi%2flogin", "'%'"),
        ("FAAPPLI\\1", "'\\'"),
        ("FAAPPLI_1\u202ex", "a control character (U+202E)"),  # right-to-left override
        ("FAAPPLI_1,FAAPPLI_2", "','"),
    ],
)
def test_hostile_path_identifier_is_refused(emulator: FollowAnalyticsEmulator, value: str, problem: str) -> None:
    op = FollowAnalyticsAppDevicesExportOperator(task_id="app", app_identifier="{{ app }}")
    op.render_template_fields({"app": value})

    with pytest.raises(FollowAnalyticsConfigError) as err:
        op.execute(context={})

    assert f"app_identifier {value!r} is not a FollowAnalytics identifier: it contains {problem}" in str(err.value)
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("value", "encoded"),
    [("FAAPPLI_é", "FAAPPLI_%C3%A9"), ("FAAPPLI_北京", "FAAPPLI_%E5%8C%97%E4%BA%AC"), ("FA&sd=0;x", "FA%26sd%3D0%3Bx")],
)
def test_other_path_identifiers_are_percent_encoded_under_the_prefix(
    emulator: FollowAnalyticsEmulator, value: str, encoded: str
) -> None:
    op = FollowAnalyticsAppDevicesExportOperator(task_id="app", app_identifier=value)

    with pytest.raises(FollowAnalyticsAPIError) as err:  # the emulator knows no such app: 404
        op.execute(context={})

    request = only_export(emulator)
    assert request.path == f"/api/apps/{encoded}/devices_export.csv"
    assert request.path.split("/")[:3] == ["", "api", "apps"]
    assert request.query == {"skip_email": "true"}  # nothing leaked from the identifier into the query
    assert err.value.http_status == 404


def test_query_identifier_cannot_inject_parameters(emulator: FollowAnalyticsEmulator) -> None:
    op = FollowAnalyticsEventAnalysisExportOperator(task_id="events", app_identifier="FAAPPLI_1&sd=0&ed=86400")

    with pytest.raises(FollowAnalyticsAPIError, match="Invalid app identifier"):
        op.execute(context={})

    assert only_export(emulator).query == {"app": "FAAPPLI_1&sd=0&ed=86400", "skip_email": "true"}


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
    common = {"endpoint", "file_format", "skip_email", "followanalytics_conn_id"}
    for operator, fields in expected.items():
        assert set(operator.template_fields) == fields | common, operator.__name__
        assert "params" not in operator.template_fields
