"""FollowAnalyticsHook's exports against the emulator: starting one, polling its callback, byte-exact downloads."""

from __future__ import annotations

import hashlib
import io

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsConfigError,
    FollowAnalyticsDownloadError,
    FollowAnalyticsExportExpiredError,
    FollowAnalyticsExportNotReadyError,
)
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from tests.fixtures import wait_for

pytestmark = pytest.mark.usefixtures("fa_conn")


def test_start_export_and_poll_until_ready(hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator) -> None:
    emulator.ready_after = 2
    emulator.export_size = 256 * 1024 * 1024
    url = hook.start_export("/api/apps/FAAPPLI_1/devices_export", {"fields": "device_id", "x": None})
    assert url.startswith(f"{emulator.url}/api/exports/download_url?export_token=")
    (export,) = emulator.requests_for("export")
    assert export.path == "/api/apps/FAAPPLI_1/devices_export.csv"
    assert export.query == {"fields": "device_id", "skip_email": "true"}
    assert [hook.get_export_status(url) for _ in range(3)] == ["pending", "pending", "ready"]
    wait_for(lambda: emulator.bytes_sent, message="the download response to end")
    assert emulator.bytes_sent[-1] < 32 * 1024 * 1024  # the 256 MiB body was not read


def test_start_export_email_mode_returns_message(hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator) -> None:
    message = hook.start_export("/api/apps/FAAPPLI_1/devices_export", {}, file_format="xls", skip_email=False)
    assert "will be sent to the email" in message
    (export,) = emulator.requests_for("export")
    assert export.path.endswith("devices_export.xls")
    assert export.query["skip_email"] == "false"


def test_start_export_without_callback_is_an_error(
    hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator
) -> None:
    emulator.add_fault("export", kind="json", body='{"success": true, "result": {"status": "ok"}}')
    with pytest.raises(FollowAnalyticsAPIError, match="without a callback URL"):
        hook.start_export("/api/apps/FAAPPLI_1/devices_export", {})


def test_start_export_rejects_foreign_callback(hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator) -> None:
    emulator.public_url = "https://evil.example.com"
    with pytest.raises(FollowAnalyticsConfigError, match="not on the connection's host"):
        hook.start_export("/api/apps/FAAPPLI_1/devices_export", {})


@pytest.mark.parametrize("fmt", ["json", "CSV", ""])
def test_start_export_rejects_unknown_format(
    hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator, fmt: str
) -> None:
    with pytest.raises(FollowAnalyticsConfigError, match=f"file_format={fmt!r}"):
        hook.start_export("/api/apps/FAAPPLI_1/devices_export", {}, file_format=fmt)
    assert emulator.requests == []


def test_callback_400_raises_expired(hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator) -> None:
    url = f"{emulator.url}/api/exports/download_url?export_token=unknown-token"
    with pytest.raises(FollowAnalyticsExportExpiredError, match="HTTP 400.*expired"):
        hook.get_export_status(url)
    assert len(emulator.requests_for("callback")) == 1


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
@pytest.mark.parametrize("fmt", ["csv", "xls"])
def test_download_export_is_byte_exact(
    hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator, mode: str, fmt: str
) -> None:
    emulator.download_mode = mode
    emulator.export_size = 3 * 1024 * 1024 + 17
    url = hook.start_export("/api/apps/FAAPPLI_1/events_export", {}, file_format=fmt)
    sink = io.BytesIO()
    written = hook.download_export(url, sink, chunk_size=256 * 1024)
    assert written == emulator.export_size
    assert hashlib.sha256(sink.getvalue()).hexdigest() == expected_export_sha256(
        emulator.export_size, fmt, kind="events"
    )


@pytest.mark.parametrize("kind", ["truncate", "chunked_cut", "reset"])
def test_broken_download_is_restarted_from_zero(
    hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator, kind: str
) -> None:
    emulator.export_size = 512 * 1024
    if kind == "chunked_cut":
        emulator.download_mode = "chunked"
    url = hook.start_export("/api/apps/FAAPPLI_1/events_export", {})
    emulator.add_fault("download", kind=kind, after_bytes=100_000, count=1)
    sink = io.BytesIO()
    assert hook.download_export(url, sink) == emulator.export_size
    assert hashlib.sha256(sink.getvalue()).hexdigest() == expected_export_sha256(
        emulator.export_size, "csv", kind="events"
    )


def test_truncated_download_fails_when_attempts_run_out(
    hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator
) -> None:
    emulator.export_size = 512 * 1024
    url = hook.start_export("/api/apps/FAAPPLI_1/events_export", {})
    emulator.add_fault("download", kind="truncate", after_bytes=1000, count=5)
    with pytest.raises(FollowAnalyticsDownloadError, match="broke off|truncated"):
        hook.download_export(url, io.BytesIO(), max_attempts=2)


def test_download_of_pending_export_says_to_wait(hook: FollowAnalyticsHook, emulator: FollowAnalyticsEmulator) -> None:
    emulator.never_ready = True
    url = hook.start_export("/api/apps/FAAPPLI_1/events_export", {})
    with pytest.raises(FollowAnalyticsExportNotReadyError, match="ExportReadySensor"):
        hook.download_export(url, io.BytesIO())
