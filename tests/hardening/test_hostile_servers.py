"""Servers that misbehave: redirects (never followed: no password, token or request reaches the other host),
absurd Retry-After values, unexpected callback statuses, and a body cut mid-download.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_bytes
from airflow_provider_followanalytics.exceptions import FollowAnalyticsAPIError, FollowAnalyticsRetryableError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.fixtures import PASSWORD
from tests.hardening._pipeline import SEGMENT_EXPORT, assert_nothing_written, fa_connection
from tests.hardening.conftest import RecordingServer, Response, Seen

pytestmark = [pytest.mark.hostile, pytest.mark.usefixtures("fa_conn")]


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
