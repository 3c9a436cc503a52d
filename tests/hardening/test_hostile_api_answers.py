"""Hostile and malformed answers of the export API: broken envelopes, callback URLs on other hosts or schemes,
with credentials or control characters. Each is refused, and nothing is sent to a foreign host.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
)
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from tests.dagrun import run_dag
from tests.hardening._pipeline import SEGMENT_EXPORT, assert_nothing_written, pipeline_dag
from tests.hardening.conftest import RecordingServer

pytestmark = [pytest.mark.hostile, pytest.mark.usefixtures("fa_conn")]


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
