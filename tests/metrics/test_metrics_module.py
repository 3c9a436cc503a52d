"""``_metrics`` on its own: the export types of the operators' endpoints, nothing done when metrics are
off, what is handed to ``Stats`` when they are on, and the retry cause of the trigger's real failures."""

from __future__ import annotations

import asyncio
import timeit
from typing import Any

import pytest

from airflow_provider_followanalytics import _metrics
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsRetryableError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.operators import exports
from airflow_provider_followanalytics.triggers.export_ready import _retry_cause

EXPECTED_TYPES = {
    exports.FollowAnalyticsSegmentDevicesExportOperator: "segment_devices",
    exports.FollowAnalyticsAppDevicesExportOperator: "app_devices",
    exports.FollowAnalyticsAppEventsExportOperator: "app_events",
    exports.FollowAnalyticsPerformanceExportOperator: "performance",
    exports.FollowAnalyticsUserMetricsExportOperator: "user_metrics",
    exports.FollowAnalyticsEventAnalysisExportOperator: "event_analysis",
    exports.FollowAnalyticsEventContextExportOperator: "event_context",
}


def _typed_operators() -> list[type[Any]]:
    base = exports.FollowAnalyticsExportOperator
    return [
        cls for cls in vars(exports).values() if isinstance(cls, type) and issubclass(cls, base) and cls is not base
    ]


def test_every_export_operator_has_its_export_type() -> None:
    assert set(_typed_operators()) == set(EXPECTED_TYPES)
    for operator, export_type in EXPECTED_TYPES.items():
        template = operator.default_endpoint
        endpoint = template.format_map({name: "FAXXXX_secretish42" for name in ("segment_id", "app_identifier")})
        assert _metrics.export_type_of(endpoint) == export_type, template


@pytest.mark.parametrize(
    ("endpoint", "export_type"),
    [
        ("/api/segments/FASEGMT_1/devices_export", "segment_devices"),
        ("/api/apps/FAAPPLI_1/devices_export", "app_devices"),
        ("/api/apps//devices_export", "custom"),  # an empty identifier is no identifier
        ("/api/apps/FAAPPLI_1/devices_export/more", "custom"),
        ("/api/campaigns_export", "custom"),
        ("/segments/FASEGMT_1/devices_export.csv", "custom"),  # the hook passes the path without suffix
    ],
)
def test_other_paths(endpoint: str, export_type: str) -> None:
    assert _metrics.export_type_of(endpoint) == export_type


def _every_call() -> None:
    _metrics.export_started("segment_devices")
    _metrics.export_ready(1.5, "triggerer")
    _metrics.http_retry("5xx", "async")
    _metrics.login("sync")
    _metrics.relogin("async")
    _metrics.download_restarted()
    _metrics.transfer_finished(bytes_downloaded=1, bytes_written=2, seconds=0.5, store="s3")


def test_nothing_reaches_stats_when_metrics_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_metrics, "_enabled", None)
    assert _metrics.enabled() is False  # the test environment sets no [metrics] option

    def refuse(*args: Any) -> None:
        raise AssertionError(f"sent while metrics are off: {args}")

    monkeypatch.setattr(_metrics, "_send", refuse)
    _every_call()
    # One disabled call is a function call and a global's test: well under a microsecond here; the
    # bound only catches a call that starts doing real work.
    seconds = min(timeit.repeat(lambda: _metrics.http_retry("5xx", "async"), number=10_000, repeat=3)) / 10_000
    assert seconds < 20e-6


class _RecordingStats:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, dict[str, str] | None]] = []

    def incr(self, name: str, count: Any, *, tags: dict[str, str] | None) -> None:
        self.calls.append(("incr", name, count, tags))

    def timing(self, name: str, value: Any, *, tags: dict[str, str] | None) -> None:
        self.calls.append(("timing", name, value.total_seconds(), tags))


def test_what_stats_receives_when_metrics_are_on(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = _RecordingStats()
    monkeypatch.setattr(_metrics, "_enabled", True)
    monkeypatch.setattr(_metrics, "_stats", stats)
    _every_call()
    _metrics.transfer_finished(bytes_downloaded=3, bytes_written=3, seconds=1.0, store="Weird/Store")
    assert stats.calls == [
        ("incr", "followanalytics.export_started", 1, {"export_type": "segment_devices"}),
        ("timing", "followanalytics.export_ready_latency", 1.5, {"waiter": "triggerer"}),
        ("incr", "followanalytics.http_retries", 1, {"cause": "5xx", "client": "async"}),
        ("incr", "followanalytics.logins", 1, {"client": "sync"}),
        ("incr", "followanalytics.relogins", 1, {"client": "async"}),
        ("incr", "followanalytics.download_restarts", 1, None),
        ("incr", "followanalytics.bytes_downloaded", 1, {"store": "s3"}),
        ("incr", "followanalytics.bytes_written", 2, {"store": "s3"}),
        ("timing", "followanalytics.transfer_duration", 0.5, {"store": "s3"}),
        ("incr", "followanalytics.bytes_downloaded", 3, {"store": "other"}),
        ("incr", "followanalytics.bytes_written", 3, {"store": "other"}),
        ("timing", "followanalytics.transfer_duration", 1.0, {"store": "other"}),
    ]


def test_a_failing_metrics_backend_never_fails_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise OSError("the metrics backend is gone")

    monkeypatch.setattr(_metrics, "_enabled", True)
    monkeypatch.setattr(_metrics, "_stats", Broken())
    _every_call()


def _poll_error(hook: FollowAnalyticsHook, callback_url: str) -> FollowAnalyticsRetryableError:
    async def poll() -> FollowAnalyticsRetryableError:
        try:
            await hook.aget_export_status(callback_url)
        except FollowAnalyticsRetryableError as exc:
            return exc
        finally:
            await hook.aclose()
        raise AssertionError("the poll did not fail")

    return asyncio.run(poll())


@pytest.mark.usefixtures("fa_conn")
def test_the_trigger_names_the_cause_of_each_real_failure(emulator: FollowAnalyticsEmulator) -> None:
    callback_url = FollowAnalyticsHook().start_export("/segments/FASEGMT_1/devices_export")
    emulator.add_fault("callback", status=503)
    assert _retry_cause(_poll_error(FollowAnalyticsHook(), callback_url)) == "5xx"
    emulator.add_fault("callback", status=429)
    assert _retry_cause(_poll_error(FollowAnalyticsHook(), callback_url)) == "429"
    emulator.add_fault("callback", kind="delay", delay=1.0)
    assert _retry_cause(_poll_error(FollowAnalyticsHook(timeout=0.2), callback_url)) == "timeout"
    emulator.stop()  # nothing listens on the port any more
    assert _retry_cause(_poll_error(FollowAnalyticsHook(), callback_url)) == "connection"


@pytest.mark.usefixtures("fa_conn")
@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_the_sensor_times_its_pokes_in_poke_mode_only(
    emulator: FollowAnalyticsEmulator, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor

    stats = _RecordingStats()
    monkeypatch.setattr(_metrics, "_enabled", True)
    monkeypatch.setattr(_metrics, "_stats", stats)
    emulator.ready_after = 1
    callback_url = FollowAnalyticsHook().start_export("/segments/FASEGMT_1/devices_export")
    sensor = ExportReadySensor(task_id="wait", callback_url=callback_url, poke_interval=0.05, mode=mode)

    assert sensor.poke({}) is False
    assert sensor.poke({}) is True

    latencies = [call for call in stats.calls if call[1] == "followanalytics.export_ready_latency"]
    if mode == "reschedule":  # each poke is another task run: no wait to time
        assert latencies == []
    else:
        assert [(call[0], call[3]) for call in latencies] == [("timing", {"waiter": "worker"})]
        assert latencies[0][2] > 0
