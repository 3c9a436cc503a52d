"""Hostile and malformed input: each case is refused with a message that names the problem, and
nothing is sent where it must not go (no request at all, or none to a foreign host) and nothing
is written to S3.

Here: DAG arguments (periods, identifiers with URL characters, absurd values), connections, and
callback URLs in XCom that are not strings. The export API's answers are in
test_hostile_api_answers.py, servers that redirect or answer absurdly in test_hostile_servers.py.
Real sockets throughout: the emulator, and small recording servers standing in for a foreign host
and for an API that redirects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsAPIError, FollowAnalyticsConfigError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsAppDevicesExportOperator,
    FollowAnalyticsEventContextExportOperator,
    FollowAnalyticsExportOperator,
    FollowAnalyticsPerformanceExportOperator,
    FollowAnalyticsSegmentDevicesExportOperator,
)
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.dagrun import run_dag
from tests.fixtures import EMAIL, PASSWORD
from tests.hardening._pipeline import START, assert_nothing_written, dag_and_task
from tests.hardening.conftest import RecordingServer

pytestmark = [pytest.mark.hostile, pytest.mark.usefixtures("fa_conn")]


# ------------------------------------------------------------------ DAG arguments
PERF = (
    FollowAnalyticsPerformanceExportOperator,
    {"app_identifiers": ["FAAPPLI_1"], "period_start": "2024-01-01", "period_end": "2024-01-02"},
)
APP = (FollowAnalyticsAppDevicesExportOperator, {"app_identifier": "FAAPPLI_1"})
SEGMENT = (FollowAnalyticsSegmentDevicesExportOperator, {"segment_id": "FASEGMT_abcd12"})
EVENT = (FollowAnalyticsEventContextExportOperator, {"app_identifier": "FAAPPLI_1", "event_id": 42})
GENERIC = (FollowAnalyticsExportOperator, {"endpoint": "/api/performance_export"})

# (operator and valid arguments, argument, bad value, what the message must say)
BAD_ARGUMENTS = [
    pytest.param(PERF, "period_start", "2024-01-01T06:00:00+00:00", "not midnight UTC", id="period-not-midnight"),
    pytest.param(PERF, "period_end", "2023-12-01", "must be after period_start", id="period-reversed"),
    pytest.param(PERF, "period_end", None, "period_end is missing", id="period-half"),
    pytest.param(PERF, "period_start", "yesterday", "period_start='yesterday' is not a date", id="period-words"),
    pytest.param(PERF, "period_start", 1704067200000, "milliseconds instead of seconds", id="period-millis"),
    pytest.param(PERF, "period_start", "9999-01-01", "outside 2000-2100", id="period-year-9999"),
    pytest.param(PERF, "period_start", True, "is a boolean, not a date", id="period-bool"),
    pytest.param(PERF, "app_identifiers", ["FAAPPLI_1,FAAPPLI_2"], "contains ','", id="apps-comma-in-item"),
    pytest.param(PERF, "app_identifiers", [], "needs at least one value", id="apps-empty"),
    pytest.param(APP, "app_identifier", "../../api/login", "contains '/'", id="id-dot-dot-slash"),
    pytest.param(APP, "app_identifier", "FAAPPLI_1?skip_email=false", "contains '?'", id="id-query"),
    pytest.param(APP, "app_identifier", "FAAPPLI_1#x", "contains '#'", id="id-fragment"),
    pytest.param(APP, "app_identifier", "FAAPPLI 1", "contains whitespace", id="id-space"),
    pytest.param(APP, "app_identifier", "FAAPPLI_1%2F..%2Flogin", "contains '%'", id="id-encoded-slash"),
    pytest.param(APP, "app_identifier", "..", "contains '..'", id="id-dot-dot"),
    pytest.param(APP, "app_identifier", "FAAPPLI_1\\..\\x", "contains '\\'", id="id-backslash"),
    pytest.param(APP, "app_identifier", "FAAPPLI_1\r\nX-Evil: 1", "control character (U+000D)", id="id-crlf"),
    pytest.param(APP, "app_identifier", "FAAPPLI_\u202e1", "control character (U+202E)", id="id-bidi-override"),
    pytest.param(APP, "app_identifier", "  ", "must be a non-empty identifier", id="id-blank"),
    pytest.param(APP, "app_identifier", {"id": 1}, "must be an identifier string", id="id-dict"),
    pytest.param(APP, "device_ids", ["d1,d2"], "contains ','", id="list-comma-in-item"),
    pytest.param(APP, "updated_since", "last tuesday", "updated_since='last tuesday'", id="iso-words"),
    pytest.param(SEGMENT, "segment_id", "FASEGMT_1/../../x", "contains '/'", id="segment-path"),
    pytest.param(SEGMENT, "endpoint", "/segments/devices_export", "no {segment_id} placeholder", id="template-hole"),
    pytest.param(
        SEGMENT, "endpoint", "https://evil.example/{segment_id}/x", "starting with '/'", id="template-other-host"
    ),
    pytest.param(EVENT, "event_id", "12abc", "event_id='12abc' is not an integer", id="event-id-text"),
    pytest.param(EVENT, "event_id", 0, "event_id=0 is invalid; expected a positive integer id", id="event-id-zero"),
    pytest.param(GENERIC, "endpoint", "/api/../api/login", "'..' segments", id="endpoint-dot-dot"),
    pytest.param(GENERIC, "endpoint", "api/performance_export", "starting with '/'", id="endpoint-relative"),
    pytest.param(GENERIC, "endpoint", "//evil.example/api/x", "starting with '/'", id="endpoint-network-path"),
    pytest.param(GENERIC, "endpoint", "/api/x?skip_email=false", "no '?'", id="endpoint-query"),
    pytest.param(GENERIC, "endpoint", "/api/x#y", "no '?', '#'", id="endpoint-fragment"),
    pytest.param(GENERIC, "query_params", {"skip_email": "false"}, "must not contain 'skip_email'", id="qp-skip"),
    pytest.param(GENERIC, "query_params", {"fields": {"a": 1}}, "cannot be sent in a query string", id="qp-nested"),
    pytest.param(GENERIC, "query_params", "fields=a", "query_params must be a dict", id="qp-text"),
    pytest.param(GENERIC, "file_format", "pdf", "file_format='pdf' is not supported", id="format-pdf"),
    pytest.param(GENERIC, "skip_email", "maybe", "skip_email='maybe' must be true or false", id="skip-email-text"),
    pytest.param(GENERIC, "followanalytics_conn_id", "", "non-empty connection id", id="conn-id-empty"),
]


@pytest.mark.parametrize(("operator", "argument", "value", "fragment"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_at_parse_and_at_run_before_any_request(
    emulator: FollowAnalyticsEmulator, operator: tuple[Any, dict[str, Any]], argument: str, value: Any, fragment: str
) -> None:
    cls, valid = operator
    with pytest.raises(FollowAnalyticsConfigError) as parsed:
        cls(task_id="export", **{**valid, argument: value})  # a literal: refused when the DAG file is parsed
    assert fragment in str(parsed.value)

    task = cls(task_id="export", **valid)
    setattr(task, argument, value)  # the same value rendered from a template: refused at run time
    with pytest.raises(FollowAnalyticsConfigError) as ran:
        task.execute({})

    assert fragment in str(ran.value)
    assert emulator.requests == []


def test_endpoint_with_a_format_suffix_is_refused_before_any_request(emulator: FollowAnalyticsEmulator) -> None:
    task = FollowAnalyticsExportOperator(task_id="export", endpoint="/api/performance_export.csv")

    with pytest.raises(FollowAnalyticsConfigError, match=r"already ends with '\.csv'"):
        task.execute({})

    assert emulator.requests == []


@pytest.mark.parametrize(
    "identifier",
    ["FAAPPLI_é", "FAAPPLI_😀", "FAAPPLI_1;x=1", "FAAPPLI_1&skip_email=false", "FAAPPLI_1'\""],
    ids=["accent", "emoji", "semicolon", "ampersand-query", "quotes"],
)
def test_other_identifier_characters_are_percent_encoded_inside_their_path_segment(
    emulator: FollowAnalyticsEmulator, identifier: str
) -> None:
    task = FollowAnalyticsAppDevicesExportOperator(task_id="export", app_identifier=identifier)

    with pytest.raises(FollowAnalyticsAPIError, match="HTTP 404: Not found"):  # not a known app
        task.execute({})

    (request,) = emulator.requests_for("export") or emulator.requests_for("unknown")
    segments = request.path.split("/")
    assert segments[:3] == ["", "api", "apps"], request.path
    assert segments[4:] == ["devices_export.csv"], request.path
    assert unquote(segments[3]) == identifier  # the identifier stayed inside its own segment
    assert request.query == {"skip_email": "true"}  # and did not add or change a query parameter


# ------------------------------------------------------------------ connections
@pytest.mark.parametrize(
    ("host", "extra", "fragment"),
    [
        ("ftp://{netloc}", {}, "has scheme 'ftp'"),
        ("http://api.follow-apps.com", {}, "uses plain http"),
        ("http://user:secret-in-host@{netloc}", {}, "must not contain credentials"),
        ("{url}/?debug=1", {}, "must not have a query or fragment"),
        ("{url}", {"timeout": "soon"}, "timeout='soon' is not a number"),
        ("{url}", {"max_retries": -1}, "max_retries=-1 is invalid; expected an integer >= 0"),
        ("{url}", {"retry_delay": "fast"}, "retry_delay='fast' is not a number"),
    ],
    ids=["ftp", "plain-http-remote", "credentials-in-host", "query-in-host", "timeout", "max-retries", "retry-delay"],
)
def test_unsafe_or_absurd_connections_are_refused_before_any_request(
    set_connection: Any, foreign_server: RecordingServer, host: str, extra: dict[str, Any], fragment: str
) -> None:
    netloc = foreign_server.url.removeprefix("http://")
    conn_host = host.format(url=foreign_server.url, netloc=netloc)
    set_connection("fa_bad", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host=conn_host, extra=extra)

    with pytest.raises(FollowAnalyticsConfigError) as err:
        FollowAnalyticsHook("fa_bad").run("GET", "/api/data_exporters")

    assert fragment in str(err.value)
    assert "secret-in-host" not in str(err.value)
    assert PASSWORD not in str(err.value)
    assert foreign_server.requests == []


# ------------------------------------------------------------------ callback URLs from XCom
NOT_A_URL = [None, "", "   ", 42, {"callback": "x"}, ["http://127.0.0.1/api/exports/download_url?export_token=a"]]
NOT_A_URL_IDS = ["none", "empty", "blank", "int", "dict", "list"]


@pytest.mark.parametrize("value", NOT_A_URL, ids=NOT_A_URL_IDS)
@pytest.mark.parametrize("operator", ["sensor", "transfer"])
def test_a_callback_url_that_is_not_a_string_is_refused(
    emulator: FollowAnalyticsEmulator, operator: str, value: Any
) -> None:
    if operator == "sensor":
        task: Any = ExportReadySensor(task_id="wait", callback_url="placeholder", poke_interval=0.05, timeout=5)
    else:
        task = FollowAnalyticsToS3Operator(task_id="to_s3", callback_url="placeholder", s3_bucket="b", s3_key="k")
    task.callback_url = value  # what the upstream XCom rendered to

    with pytest.raises(FollowAnalyticsConfigError, match="callback_url must be the non-empty URL") as err:
        task.execute({})

    assert repr(value) in str(err.value)
    assert emulator.requests == []


@pytest.mark.usefixtures("airflow_db", "aws_conn")
def test_a_dict_in_xcom_fails_the_sensor_in_a_real_run(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, task_log: Any
) -> None:
    DAG, task = dag_and_task()
    with DAG("hostile_xcom_dict", schedule=None, start_date=START, catchup=False) as dag:

        @task
        def start_export() -> dict[str, str]:
            return {"callback": "not what the sensor expects"}

        not_a_url: Any = start_export()
        wait = ExportReadySensor(task_id="wait", callback_url=not_a_url, poke_interval=0.05, timeout=5)
        ready_url: Any = wait.output
        FollowAnalyticsToS3Operator(task_id="to_s3", callback_url=ready_url, s3_bucket=s3_bucket, s3_key="x.csv")

    result = run_dag(dag)

    assert result.task_states == {"start_export": "success", "wait": "failed", "to_s3": "upstream_failed"}
    assert "callback_url must be the non-empty URL" in task_log.text
    assert emulator.requests == []
    assert_nothing_written(s3_client, s3_bucket)
