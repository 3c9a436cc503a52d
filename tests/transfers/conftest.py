"""Fixtures of the transfer operator tests (shared ones live in tests/fixtures.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

MiB = 1 << 20
SEGMENT_EXPORT = "/segments/FASEGMT_abcd12/devices_export"


@pytest.fixture
def start_export(fa_conn: dict[str, Any], emulator: FollowAnalyticsEmulator) -> Callable[..., str]:
    """Start an export on the emulator (ready at once) and return its callback URL."""

    def _start(file_format: str = "csv", size: int | None = None) -> str:
        if size is not None:
            emulator.export_size = size
        return FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {"fields": "device_id"}, file_format=file_format)

    return _start


def sha256_of_chunks(chunks: Any) -> tuple[str, int]:
    """SHA-256 and length of an iterable of byte chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


@pytest.fixture(scope="session")
def moto_process() -> Iterator[str]:
    """moto's S3 server in a child process, so that its memory is not the test process's memory."""
    code = (
        "import sys\n"
        "from moto.server import ThreadedMotoServer\n"
        "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
        "server.start()\n"
        "host, port = server.get_host_and_port()\n"
        "print(f'http://{host}:{port}', flush=True)\n"
        "sys.stdin.read()\n"  # serve until the parent closes our stdin
        "server.stop()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    assert child.stdout is not None
    assert child.stdin is not None
    url = child.stdout.readline().strip()
    assert url.startswith("http://"), f"moto child process did not start: {url!r}"
    try:
        yield url
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
