"""Fixtures of the transfer operator tests (shared ones live in tests/fixtures.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from standins.processes import StandInProcess, moto_command

if TYPE_CHECKING:
    from tests.transfers._object_stores import Store

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
def moto_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server in a child process, so that its memory is not the test process's memory."""
    output = tmp_path_factory.mktemp("moto-process") / "moto.log"
    with StandInProcess("moto", moto_command(), output) as moto:
        yield moto.url


@pytest.fixture(params=["file", "gs", "s3", "abfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path, fa_conn: dict[str, Any]) -> Store:
    """Each destination store in turn (local folder, GCS emulator, moto's S3, Azurite), empty."""
    from tests.transfers._object_stores import AzureStore, GCSStore, LocalStore, S3Store

    if request.param == "file":
        return LocalStore(tmp_path / "lake")
    if request.param == "gs":
        request.getfixturevalue("gcs_object_storage")  # gs:// paths on the emulator, on 2.10 too
        return GCSStore(request.getfixturevalue("gcs_bucket"))
    if request.param == "abfs":
        return AzureStore(request.getfixturevalue("azure_container_client"), request.getfixturevalue("azure_conn"))
    return S3Store(request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket"))
