"""Hostile and malformed input: each case is refused with a message that names the problem, and
nothing is sent where it must not go (no request at all, or none to a foreign host) and nothing
is written to S3.

Sources of bad input covered: DAG arguments (periods, identifiers with URL characters, absurd
values), connections, the export API's answer (malformed envelopes, callback URLs on other
hosts or schemes, with credentials), servers that redirect, and callback URLs in XCom that are
not strings. Real sockets throughout: the emulator, and small recording servers standing in for
a foreign host and for an API that redirects.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any
from urllib.parse import unquote

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_bytes
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
    FollowAnalyticsRetryableError,
)
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
from tests.hardening._pipeline import (
    SEGMENT_EXPORT,
    START,
    assert_nothing_written,
    dag_and_task,
    fa_connection,
    pipeline_dag,
)
from tests.hardening.conftest import RecordingServer, Response, Seen

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


# ------------------------------------------------------------------ the export API's answer
def _start_export() -> FollowAnalyticsSegmentDevicesExportOperator:
    return FollowAnalyticsSegmentDevicesExportOperator(task_id="export", segment_id="FASEGMT_abcd12")


def _export_answers(emulator: FollowAnalyticsEmulator, body: Any, content_type: str | None = None) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    emulator.add_fault("export", kind="json", body=raw, content_type=content_type)


MALFORMED_ANSWERS = [
    pytest.param("OK", None, "HTTP 200 with a non-JSON body ('OK')", id="not-json"),
    pytest.param(
        "<html><body>Maintenance</body></html>", "text/html", "(Content-Type text/html)", id="html-instead-of-json"
    ),
    pytest.param({"success": False, "message": "Quota exceeded"}, None, "success is False: Quota", id="success-false"),
    pytest.param({"success": True, "result": {}}, None, "without a callback URL", id="no-callback"),
    pytest.param({"success": True, "result": {"callback": 123}}, None, "without a callback URL", id="callback-int"),
    pytest.param({"success": True, "result": "sent by e-mail"}, None, "without a callback URL", id="callback-text"),
    pytest.param({"success": True}, None, "without a 'result' field", id="no-result"),
    pytest.param([1, 2], None, "expected a JSON envelope", id="json-array"),
]


@pytest.mark.parametrize(("body", "content_type", "fragment"), MALFORMED_ANSWERS)
def test_a_malformed_export_answer_is_a_clear_error_and_nothing_follows(
    emulator: FollowAnalyticsEmulator, body: Any, content_type: str | None, fragment: str
) -> None:
    _export_answers(emulator, body, content_type)

    with pytest.raises(FollowAnalyticsAPIError) as err:
        _start_export().execute({})

    assert fragment in str(err.value)
    assert [r.route for r in emulator.requests] == ["login", "export"]  # not retried, nothing polled


def _hostile_callbacks(emulator: FollowAnalyticsEmulator, foreign: RecordingServer) -> dict[str, tuple[str, str]]:
    path = "/api/exports/download_url?export_token=hostile-token-123"
    emu_netloc = emulator.url.removeprefix("http://")
    return {
        "other-port": (f"{foreign.url}{path}", "not on the connection's host"),
        "other-host": (f"https://evil.example{path}", "not on the connection's host"),
        "ftp": (f"ftp://{emu_netloc}{path}", "is not an http(s) URL"),
        "file": ("file:///etc/passwd?export_token=x", "is not an http(s) URL"),
        "javascript": ("javascript:alert(document.cookie)//?export_token=x", "is not an http(s) URL"),
        "credentials": (f"http://user:pw@{emu_netloc}{path}", "must not contain credentials"),
        "plain-http-remote": (f"http://evil.example{path}", "plain http on a non-loopback host"),
        "no-token": (f"{emulator.url}/api/exports/download_url", "has no export_token"),
        "two-tokens": (f"{emulator.url}{path}&export_token=second", "has no export_token"),
        "relative": (path, "is not an http(s) URL"),
    }


HOSTILE_CALLBACK_IDS = [
    "other-port",
    "other-host",
    "ftp",
    "file",
    "javascript",
    "credentials",
    "plain-http-remote",
    "no-token",
    "two-tokens",
    "relative",
]


@pytest.mark.parametrize("case", HOSTILE_CALLBACK_IDS)
def test_a_hostile_callback_url_from_the_api_is_refused_and_never_called(
    emulator: FollowAnalyticsEmulator, foreign_server: RecordingServer, case: str
) -> None:
    url, fragment = _hostile_callbacks(emulator, foreign_server)[case]
    _export_answers(emulator, {"success": True, "result": {"callback": url}})

    with pytest.raises(FollowAnalyticsConfigError) as err:
        _start_export().execute({})

    assert fragment in str(err.value)
    assert "hostile-token-123" not in str(err.value)
    assert [r.route for r in emulator.requests] == ["login", "export"]
    assert foreign_server.requests == []


@pytest.mark.parametrize("public_url", ["foreign", "https://evil.example"], ids=["other-port", "other-host"])
def test_an_api_that_hands_out_callbacks_on_a_foreign_host_is_refused(
    emulator: FollowAnalyticsEmulator, foreign_server: RecordingServer, public_url: str
) -> None:
    emulator.public_url = foreign_server.url if public_url == "foreign" else public_url

    with pytest.raises(FollowAnalyticsConfigError, match="refusing to send FollowAnalytics credentials"):
        _start_export().execute({})

    assert foreign_server.requests == []
    assert emulator.requests_for("callback") == []


@pytest.mark.usefixtures("airflow_db", "aws_conn")
def test_a_foreign_callback_fails_the_pipeline_at_the_export_task(
    emulator: FollowAnalyticsEmulator, foreign_server: RecordingServer, s3_client: Any, s3_bucket: str
) -> None:
    emulator.public_url = foreign_server.url

    result = run_dag(pipeline_dag(s3_bucket))

    assert result.task_states == {"start_export": "failed", "wait": "upstream_failed", "to_s3": "upstream_failed"}
    assert "start_export" not in result.xcoms
    assert foreign_server.requests == []
    assert_nothing_written(s3_client, s3_bucket)


async def test_control_characters_in_a_callback_url_never_become_headers(emulator: FollowAnalyticsEmulator) -> None:
    hook = FollowAnalyticsHook()
    url = hook.start_export(SEGMENT_EXPORT, {})
    hostile = url + "\r\nX-Evil: injected"
    _export_answers(emulator, {"success": True, "result": {"callback": hostile}})
    try:
        # Refusing the URL would be fine too; what matters is what reaches the wire (below).
        with contextlib.suppress(FollowAnalyticsError):
            hook.get_export_status(hook.start_export(SEGMENT_EXPORT, {}))  # from the API's answer
        with contextlib.suppress(FollowAnalyticsError):
            await hook.aget_export_status(hostile)  # from XCom, polled by the trigger
    finally:
        await hook.aclose()

    assert len(emulator.requests_for("export")) == 2
    for request in emulator.requests:
        assert "x-evil" not in request.headers
        assert request.path in ("/api/login", f"{SEGMENT_EXPORT}.csv", "/api/exports/download_url")


# ------------------------------------------------------------------ servers that redirect
TOKEN_OF_REDIRECTING_API = "redirecting-api-token-5150"


def _redirecting_api(foreign: RecordingServer, *, login_too: bool) -> Any:
    def respond(seen: Seen) -> Response:
        if seen.path == "/api/login" and not login_too:
            body = {"success": True, "result": {"auth_token": TOKEN_OF_REDIRECTING_API, "user": {}}}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return 302, {"Location": f"{foreign.url}{seen.path}"}, b""

    return respond


@pytest.fixture
def redirecting_api(
    recording_server: Any, foreign_server: RecordingServer, set_connection: Any
) -> tuple[RecordingServer, str]:
    """An API that logs in fine and answers everything else with a 302 to the foreign server."""
    api = recording_server(_redirecting_api(foreign_server, login_too=False))
    fa_connection(set_connection, api.url, "fa_redirecting", max_retries=0)
    return api, f"{api.url}/api/exports/download_url?export_token=redirect-token-1"


def _assert_redirect_refused(err: pytest.ExceptionInfo[Any], foreign: RecordingServer) -> None:
    message = str(err.value)
    assert "HTTP 302" in message
    assert TOKEN_OF_REDIRECTING_API not in message
    assert "redirect-token-1" not in message
    assert foreign.requests == []  # not followed: no token, no password, no request at all


def test_a_redirected_login_does_not_carry_the_password_away(
    recording_server: Any, foreign_server: RecordingServer, set_connection: Any
) -> None:
    api = recording_server(_redirecting_api(foreign_server, login_too=True))
    fa_connection(set_connection, api.url, "fa_redirecting_login", max_retries=0)

    with pytest.raises(FollowAnalyticsAPIError) as err:
        FollowAnalyticsHook("fa_redirecting_login").login()

    assert "redirect" in str(err.value)
    assert PASSWORD not in str(err.value)
    _assert_redirect_refused(err, foreign_server)
    assert [seen.path for seen in api.requests] == ["/api/login"]


def test_a_redirected_export_start_is_not_followed(
    redirecting_api: tuple[RecordingServer, str], foreign_server: RecordingServer
) -> None:
    with pytest.raises(FollowAnalyticsAPIError) as err:
        FollowAnalyticsHook("fa_redirecting").start_export(SEGMENT_EXPORT, {})

    _assert_redirect_refused(err, foreign_server)


def test_a_redirected_callback_poll_is_not_followed(
    redirecting_api: tuple[RecordingServer, str], foreign_server: RecordingServer
) -> None:
    _, callback = redirecting_api
    with pytest.raises(FollowAnalyticsAPIError) as err:
        FollowAnalyticsHook("fa_redirecting").get_export_status(callback)

    _assert_redirect_refused(err, foreign_server)


async def test_a_redirected_callback_poll_from_the_triggerer_is_not_followed(
    redirecting_api: tuple[RecordingServer, str], foreign_server: RecordingServer
) -> None:
    _, callback = redirecting_api
    hook = FollowAnalyticsHook("fa_redirecting")
    try:
        with pytest.raises(FollowAnalyticsAPIError) as err:
            await hook.aget_export_status(callback)
    finally:
        await hook.aclose()

    _assert_redirect_refused(err, foreign_server)


@pytest.mark.usefixtures("aws_conn")
def test_a_redirected_download_is_not_followed_and_writes_nothing(
    redirecting_api: tuple[RecordingServer, str], foreign_server: RecordingServer, s3_client: Any, s3_bucket: str
) -> None:
    _, callback = redirecting_api
    task = FollowAnalyticsToS3Operator(
        task_id="to_s3",
        callback_url=callback,
        s3_bucket=s3_bucket,
        s3_key="x.csv",
        followanalytics_conn_id="fa_redirecting",
    )

    with pytest.raises(FollowAnalyticsAPIError) as err:
        task.execute({})

    _assert_redirect_refused(err, foreign_server)
    assert_nothing_written(s3_client, s3_bucket)


# ------------------------------------------------------------------ absurd answers of the server
@pytest.mark.parametrize(
    "retry_after", ["86400", "Fri, 31 Dec 2100 23:59:59 GMT"], ids=["one-day", "http-date-in-2100"]
)
def test_an_absurd_retry_after_fails_fast_instead_of_sleeping(
    emulator: FollowAnalyticsEmulator, retry_after: str
) -> None:
    emulator.add_fault("login", status=429, retry_after=retry_after, count=10)

    with pytest.raises(FollowAnalyticsRetryableError, match="longer than max_retry_delay") as err:
        FollowAnalyticsHook().login()

    assert err.value.http_status == 429
    assert len(emulator.requests_for("login")) == 1


def test_an_unreadable_retry_after_falls_back_to_the_backoff(emulator: FollowAnalyticsEmulator) -> None:
    emulator.add_fault("login", status=429, retry_after="soon, maybe")

    FollowAnalyticsHook().login()

    assert len(emulator.requests_for("login")) == 2


@pytest.mark.parametrize("status", [404, 418, 302], ids=["404", "418", "302-no-location"])
def test_an_unexpected_callback_status_fails_at_once(emulator: FollowAnalyticsEmulator, status: int) -> None:
    hook = FollowAnalyticsHook()
    url = hook.start_export(SEGMENT_EXPORT, {})
    emulator.add_fault("callback", status=status, count=10)

    with pytest.raises(FollowAnalyticsAPIError) as err:
        hook.get_export_status(url)

    assert not isinstance(err.value, FollowAnalyticsRetryableError)
    assert f"HTTP {status}" in str(err.value)
    assert len(emulator.requests_for("callback")) == 1  # an answer, not a transient failure: no retry


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


def test_download_into_a_file_stays_byte_exact_after_a_hostile_restart(emulator: FollowAnalyticsEmulator) -> None:
    # A server that cuts the body is retried from zero: the file holds the export, not two halves.
    hook = FollowAnalyticsHook()
    url = hook.start_export(SEGMENT_EXPORT, {})
    emulator.add_fault("download", kind="truncate", after_bytes=1000)
    sink = io.BytesIO(b"prefix:")
    sink.seek(0, io.SEEK_END)

    written = hook.download_export(url, sink)

    assert written == emulator.export_size
    assert sink.getvalue() == b"prefix:" + expected_export_bytes(emulator.export_size, "csv")
