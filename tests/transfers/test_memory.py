"""Peak memory of a large transfer stays flat: it does not grow with the export's size.

moto runs in a child process here (``moto_process``), so that the bucket's copy of the file
is not counted in this process's RSS; the emulator serves the export from a cached 1 MiB
pattern, so what grows in this process is the operator's own memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator
from tests.transfers.conftest import MiB, sha256_of_chunks

pytestmark = [pytest.mark.slow, pytest.mark.version_independent]


@contextmanager
def peak_rss_growth(interval: float = 0.002) -> Iterator[dict[str, int]]:
    """Sample this process's RSS in a thread; yields a dict that gets ``peak`` and ``growth`` (peak - start)."""
    process = psutil.Process()
    start = process.memory_info().rss
    peak = start
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, process.memory_info().rss)
            stop.wait(interval)

    result: dict[str, int] = {}
    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result["peak"] = max(peak, process.memory_info().rss)
        result["growth"] = result["peak"] - start


@pytest.fixture
def big_s3(monkeypatch: pytest.MonkeyPatch, moto_process: str) -> Any:
    """``aws_default`` on the out-of-process moto server, and a client to check the bucket."""
    import json

    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_process, "region_name": "us-east-1"},
            }
        ),
    )
    client = boto3.client(
        "s3",
        endpoint_url=moto_process,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="memory-test")
    return client


def test_peak_memory_stays_flat_from_100_to_300_mib(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], big_s3: Any
) -> None:
    def transfer(size: int, key: str) -> tuple[dict[str, int], float]:
        url = start_export("xls", size)
        operator = FollowAnalyticsToS3Operator(
            task_id="to_s3", callback_url=url, s3_bucket="memory-test", s3_key=key, replace=True
        )
        started = time.monotonic()
        with peak_rss_growth() as rss:
            operator.execute({})
        return rss, time.monotonic() - started

    transfer(20 * MiB, "warm-up.xls")  # imports, connection pools, allocator arenas
    mid, _ = transfer(100 * MiB, "mid.xls")
    big_size = 300 * MiB
    big, seconds = transfer(big_size, "big.xls")

    print(
        f"RSS growth: 100 MiB export {mid['growth'] / MiB:.1f} MiB, 300 MiB export {big['growth'] / MiB:.1f} MiB "
        f"(peaks {mid['peak'] / MiB:.0f} and {big['peak'] / MiB:.0f} MiB; {big_size / MiB / seconds:.0f} MiB/s)"
    )
    # Default parts are 8 MiB, 4 uploading + 1 filling: ~40 MiB of buffers, far below the file size.
    assert big["growth"] < 80 * MiB, f"peak RSS grew by {big['growth'] / MiB:.0f} MiB for a 300 MiB export"
    # Absolute peaks, not growths: how much the allocator kept from the run before varies, and so do
    # the finished parts that botocore's reference cycles hold until a collection (up to ~7 parts
    # seen on a loaded machine). Buffering that grew with the size would add 200 MiB here.
    assert big["peak"] < mid["peak"] + 64 * MiB, "memory grows with the export size"
    body = big_s3.get_object(Bucket="memory-test", Key="big.xls")["Body"]
    assert sha256_of_chunks(body.iter_chunks(4 * MiB)) == (expected_export_sha256(big_size, "xls"), big_size)
