"""Concurrency: one hook shared by many threads, and many pipelines at once against one emulator.

A hook is meant to be shared (one login, one connection pool): 16 threads racing through every
call must get correct answers with exactly one login, and when the token expires under them,
one new login per expiry, not one per thread. Twenty export >> wait >> transfer pipelines
running at the same time (each task's ``execute()`` in its own thread, as twenty workers would)
must deliver twenty byte-exact objects.
"""

from __future__ import annotations

import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.hardening._pipeline import SEGMENT_EXPORT, object_sha256

pytestmark = [pytest.mark.concurrency, pytest.mark.usefixtures("fa_conn")]

THREADS = 16
PIPELINES = 20


def _like_a_worker_process() -> None:
    """Give a test thread what a worker's main thread has on Airflow 2.10.

    Airflow 2.10's ``ExecutorSafeguard`` keeps its callers in a thread-local that only the thread
    that imported it has, so ``execute()`` in another thread raises AttributeError. Workers run
    each task in the main thread of its own process; this test runs twenty in threads of one.
    """
    if not AIRFLOW_V_3:
        from airflow.models.baseoperator import ExecutorSafeguard

        if not hasattr(ExecutorSafeguard._sentinel, "callers"):
            ExecutorSafeguard._sentinel.callers = {}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_one_hook_shared_by_16_threads_logs_in_once(emulator: FollowAnalyticsEmulator) -> None:
    emulator.ready_after = 1  # every export answers 202 once, then 200
    hook = FollowAnalyticsHook()
    start_together = threading.Barrier(THREADS)

    def work(index: int) -> tuple[Any, str, list[str], int, str]:
        start_together.wait()  # all threads hit the (not yet logged-in) hook at the same moment
        exporters = hook.run("GET", "/api/data_exporters")
        url = hook.start_export(SEGMENT_EXPORT, {"fields": f"field_{index}"})
        statuses = [hook.get_export_status(url), hook.get_export_status(url)]
        sink = io.BytesIO()
        written = hook.download_export(url, sink)
        return exporters, url, statuses, written, _sha256(sink.getvalue())

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))

    expected = expected_export_sha256(emulator.export_size, "csv")
    assert {len(exporters) for exporters, *_ in results} == {2}
    assert len({url for _, url, *_ in results}) == THREADS  # sixteen different exports
    assert all(statuses == ["pending", "ready"] for _, _, statuses, _, _ in results)
    assert all(written == emulator.export_size and sha == expected for *_, written, sha in results)
    # One login in all, and it was this hook's: it is the only hook of the test.
    assert emulator.login_count == len(emulator.requests_for("login")) == 1  # no login storm
    exports = {r.query["fields"] for r in emulator.requests_for("export")}
    assert exports == {f"field_{i}" for i in range(THREADS)}  # each thread's own parameters


def test_a_token_expiring_under_16_threads_costs_one_login_per_expiry(emulator: FollowAnalyticsEmulator) -> None:
    # Each wave, every thread makes 2 authenticated calls: 32 uses, exactly what a token allows. So
    # the token of wave N is used up when wave N+1 starts, and all 16 threads meet the expiry at
    # the same moment: the worst case for a login storm.
    setup = FollowAnalyticsHook()
    urls = [setup.start_export(SEGMENT_EXPORT, {}) for _ in range(THREADS)]
    calls_per_wave = 2 * THREADS
    emulator.token_max_uses = calls_per_wave
    logins_before = emulator.login_count
    hook = FollowAnalyticsHook()
    waves = 3
    wave_start = threading.Barrier(THREADS)

    def work(index: int) -> list[tuple[int, str]]:
        seen = []
        for _ in range(waves):
            wave_start.wait()
            seen.append((len(hook.run("GET", "/api/data_exporters")), hook.get_export_status(urls[index])))
            wave_start.wait()  # nobody starts the next wave before the token is used up
        return seen

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))

    assert all(seen == [(2, "ready")] * waves for seen in results)
    # Only this hook logs in after logins_before: the new logins are all its own.
    assert emulator.login_count - logins_before == waves  # one per expiry, not per thread


@pytest.mark.usefixtures("aws_conn")
def test_20_pipelines_at_once_deliver_20_exact_objects(
    emulator: FollowAnalyticsEmulator, s3_client: Any, s3_bucket: str
) -> None:
    emulator.ready_after = 2  # each sensor really waits

    def pipeline(index: int) -> tuple[str, str, str]:
        file_format = "xls" if index % 2 else "csv"  # two different files, so a mix-up would show
        start = FollowAnalyticsSegmentDevicesExportOperator(
            task_id=f"start_{index}", segment_id="FASEGMT_abcd12", file_format=file_format
        )
        url = start.execute({})
        wait = ExportReadySensor(task_id=f"wait_{index}", callback_url=url, poke_interval=0.05, timeout=30)
        ready = wait.execute({})
        to_s3 = FollowAnalyticsToS3Operator(
            task_id=f"to_s3_{index}",
            callback_url=ready,
            s3_bucket=s3_bucket,
            s3_key=f"exports/{index}.{file_format}",
        )
        return url, ready, to_s3.execute({})

    with ThreadPoolExecutor(PIPELINES, initializer=_like_a_worker_process) as pool:
        results = list(pool.map(pipeline, range(PIPELINES)))

    assert len({url for url, _, _ in results}) == PIPELINES
    assert all(url == ready for url, ready, _ in results)
    for index, (_, _, uri) in enumerate(results):
        file_format = "xls" if index % 2 else "csv"
        key = f"exports/{index}.{file_format}"
        assert uri == f"s3://{s3_bucket}/{key}"
        expected = (expected_export_sha256(emulator.export_size, file_format), emulator.export_size)
        assert object_sha256(s3_client, s3_bucket, key) == expected
    assert s3_client.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == PIPELINES
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    # One login per hook: each pipeline's export, sensor and transfer task.
    assert emulator.login_count == 3 * PIPELINES
