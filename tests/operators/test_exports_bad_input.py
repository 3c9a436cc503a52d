"""Export operators refuse bad and hostile arguments at parse and at run time, before any request."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsAPIError, FollowAnalyticsConfigError
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
from tests.operators._exports import JAN_1, UTC, only_export

pytestmark = pytest.mark.usefixtures("fa_conn")


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
