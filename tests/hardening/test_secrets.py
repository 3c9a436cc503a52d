"""Secrets on the error paths: wrong passwords, 401 storms, servers whose error pages echo secrets.

The suite-wide guard (tests/secrets_guard.py) fails any test whose logs, output or failure text
contain the emulator's password, an auth token it issued, an export token or an API key; the
tests below drive the pipeline through the error paths on purpose, with dag.test(), and rely on
it, asserting on top that the secrets they introduce themselves (a wrong password, the token of
a stand-in server) are absent too. The first test proves the guard is really watching.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.triggers.export_ready import ExportReadyTrigger
from tests.fixtures import PASSWORD
from tests.hardening._pipeline import (
    SEGMENT_EXPORT,
    assert_nothing_written,
    fa_connection,
    run_pipeline,
    task_failure_text,
)
from tests.hardening.conftest import Response, Seen
from tests.secrets_guard import current_secrets, find_leaks

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("airflow_db", "fa_conn", "aws_conn")]

MODES = [pytest.param(False, id="poke"), pytest.param(True, id="deferrable")]


def test_the_secrets_guard_is_watching_this_suite(emulator: FollowAnalyticsEmulator) -> None:
    hook = FollowAnalyticsHook()
    hook.start_export(SEGMENT_EXPORT, {})

    secrets = current_secrets()

    assert secrets["the account password"] == PASSWORD
    assert secrets["auth token #1"] == emulator.issued_tokens[0]
    assert "export token #1" in secrets
    assert sum(name.endswith(("of FAENTITY_demo001", "of FAENTITY_demo002")) for name in secrets) == 4  # API keys
    # ... and a text holding one of them is reported, by kind, without showing it.
    leaks = find_leaks({"the task log": f"login failed for {PASSWORD}"}, secrets)
    assert leaks == ["the account password in the task log"]


def test_a_401_storm_fails_after_one_new_login_without_showing_a_token(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, task_log: Any
) -> None:
    emulator.token_max_uses = 0  # every token is refused: 401 to every authenticated request

    result = run_pipeline(s3_bucket)

    assert result.task_states["start_export"] == "failed"
    text = task_failure_text(task_log)
    assert "HTTP 401" in text
    assert "Invalid or expired token" in text
    assert emulator.login_count == 2  # the token, then one new login; no storm
    assert len(emulator.requests_for("export")) == 2
    assert all(token not in text for token in emulator.issued_tokens)
    assert_nothing_written(s3_client, s3_bucket)


def test_a_wrong_password_at_the_transfer_stays_out_of_the_logs(
    emulator: FollowAnalyticsEmulator, set_connection: Any, s3_client: Any, s3_bucket: str, task_log: Any
) -> None:
    wrong = "wrong-pw-for-the-transfer-31337"
    conn_id = fa_connection(set_connection, emulator.url, "fa_transfer_wrong_pw", password=wrong)

    result = run_pipeline(s3_bucket, transfer_conn_id=conn_id)

    assert result.task_states == {"start_export": "success", "wait": "success", "to_s3": "failed"}
    text = task_failure_text(task_log)
    assert "Invalid email or password" in text
    assert wrong not in text
    assert_nothing_written(s3_client, s3_bucket)


def _echo_callback_url_in_5xx(emulator: FollowAnalyticsEmulator, route: str, count: int) -> None:
    """A proxy error page that quotes the URL it failed to reach: the callback URL, export token included."""
    (export,) = emulator.requests_for("export")
    token = next(iter(emulator._exports))  # the one export of the run
    url = f"{emulator.url}/api/exports/download_url?export_token={token}"
    assert export.route == "export"
    body = f"502 Bad Gateway: {url}"  # short: the hook quotes the first 120 characters of a body
    emulator.add_fault(route, status=502, body=body, count=count)


@pytest.mark.parametrize("deferrable", MODES)
def test_an_error_page_quoting_the_callback_url_does_not_leak_the_export_token_while_waiting(
    emulator: FollowAnalyticsEmulator,
    set_connection: Any,
    s3_client: Any,
    s3_bucket: str,
    task_log: Any,
    deferrable: bool,
) -> None:
    sensor_conn = fa_connection(set_connection, emulator.url, "fa_sensor_no_retry", max_retries=0)

    result = run_pipeline(
        s3_bucket,
        deferrable=deferrable,
        sensor_conn_id=sensor_conn,
        before_wait=lambda: _echo_callback_url_in_5xx(emulator, "callback", count=100),
    )

    assert result.task_states["wait"] == "failed"
    text = task_failure_text(task_log)
    assert "HTTP 502" in text
    assert "export_token=***" in text  # the page is quoted, its token hidden (and the guard checks)
    assert_nothing_written(s3_client, s3_bucket)


def test_an_error_page_quoting_the_callback_url_does_not_leak_the_export_token_at_download(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str, task_log: Any
) -> None:
    result = run_pipeline(s3_bucket, before_transfer=lambda: _echo_callback_url_in_5xx(emulator, "download", count=100))

    assert result.task_states["to_s3"] == "failed"
    assert "HTTP 502" in task_failure_text(task_log)
    assert_nothing_written(s3_client, s3_bucket)


# ------------------------------------------------------------------ servers that echo credentials
ECHO_TOKEN = "echo-api-auth-token-8d2f1b"


def _echo_api(respond_login: bool) -> Any:
    """An API whose error pages echo what it received: the login body, the Authorization header."""

    def respond(seen: Seen) -> Response:
        if seen.path == "/api/login" and respond_login:
            body = {"success": True, "result": {"auth_token": ECHO_TOKEN, "user": {}}}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        if seen.path == "/api/login":
            message = f"Bad login payload: {seen.body.decode()}"
        else:
            message = f"Bad request, headers were: Authorization: {seen.headers.get('authorization')}"
        return 400, {"Content-Type": "application/json"}, json.dumps({"success": False, "message": message}).encode()

    return respond


def _fail_if_in(secret: str, text: str, what: str) -> None:
    # pytest.fail without a traceback: the failure text must not quote the secret either.
    if secret in text:
        pytest.fail(f"{what} appears in the error message", pytrace=False)


@pytest.mark.hostile
def test_a_login_error_that_echoes_the_request_does_not_show_the_password(
    recording_server: Any, set_connection: Any
) -> None:
    api = recording_server(_echo_api(respond_login=False))
    fa_connection(set_connection, api.url, "fa_echo", max_retries=0)

    with pytest.raises(FollowAnalyticsError) as err:
        FollowAnalyticsHook("fa_echo").login()

    assert "HTTP 400" in str(err.value)
    _fail_if_in(PASSWORD, str(err.value), "the password")


@pytest.mark.hostile
def test_a_callback_error_that_echoes_the_headers_does_not_show_the_auth_token(
    recording_server: Any, set_connection: Any
) -> None:
    api = recording_server(_echo_api(respond_login=True))
    fa_connection(set_connection, api.url, "fa_echo", max_retries=0)

    with pytest.raises(FollowAnalyticsError) as err:
        FollowAnalyticsHook("fa_echo").get_export_status(f"{api.url}/api/exports/download_url?export_token=e1")

    assert "HTTP 400" in str(err.value)
    _fail_if_in(ECHO_TOKEN, str(err.value), "the auth token")


@pytest.mark.hostile
async def test_a_trigger_event_never_carries_an_echoed_auth_token(recording_server: Any, set_connection: Any) -> None:
    api = recording_server(_echo_api(respond_login=True))
    fa_connection(set_connection, api.url, "fa_echo", max_retries=0)
    trigger = ExportReadyTrigger(
        callback_url=f"{api.url}/api/exports/download_url?export_token=e1",
        followanalytics_conn_id="fa_echo",
        poll_interval=0.05,
    )

    event = await trigger.run().__anext__()

    assert event.payload["status"] == "error"
    _fail_if_in(ECHO_TOKEN, json.dumps(event.payload), "the auth token")
