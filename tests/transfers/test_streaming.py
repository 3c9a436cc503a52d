"""The export reader and the restart policy on their own (emulator over real sockets), content types, import cost."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import (
    FollowAnalyticsEmulator,
    expected_export_bytes,
    expected_export_sha256,
)
from airflow_provider_followanalytics.exceptions import FollowAnalyticsDownloadError
from airflow_provider_followanalytics.hooks._destination import content_type_for
from airflow_provider_followanalytics.hooks._export_reader import ExportReader, stream_export
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import part_size_for
from tests.transfers.conftest import MiB, sha256_of_chunks


def _read_all(url: str, size: int, gzip_level: int | None = None) -> bytes:
    with FollowAnalyticsHook().open_export(url, 100_000) as export:
        reader = ExportReader(export, gzip_level)
        return b"".join(iter(lambda: reader.read(size), b""))


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
@pytest.mark.parametrize("read_size", [1, 4096, 5 * MiB, 3 * MiB + 7])
def test_reads_are_whole_until_the_end(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], mode: str, read_size: int
) -> None:
    emulator.download_mode = mode
    size = 2 * MiB + 12_345 if read_size > 1 else 50_000
    url = start_export("csv", size)
    sizes = []
    with FollowAnalyticsHook().open_export(url, 100_000) as export:
        reader = ExportReader(export)
        assert (reader.readable(), reader.seekable()) == (True, False)
        data = b""
        while piece := reader.read(read_size):
            sizes.append(len(piece))
            data += piece
        assert reader.read(read_size) == b""
        assert reader.tell() == reader.bytes_out == reader.bytes_downloaded == size

    assert data == expected_export_bytes(size, "csv")
    assert all(length == read_size for length in sizes[:-1])  # libraries take a short read for the end
    assert sizes[-1] <= read_size


def test_readinto_fills_a_buffer(emulator: FollowAnalyticsEmulator, start_export: Callable[..., str]) -> None:
    url = start_export("xls", 300_000)
    buffer = bytearray(64 * 1024)
    out = bytearray()
    with FollowAnalyticsHook().open_export(url, 100_000) as export:
        reader = ExportReader(export)
        while count := reader.readinto(buffer):
            out += buffer[:count]
    assert bytes(out) == expected_export_bytes(300_000, "xls")


@pytest.mark.parametrize("gzip_level", [None, 6])
def test_blocks_hand_out_the_export_as_it_arrives(start_export: Callable[..., str], gzip_level: int | None) -> None:
    size = 2 * MiB + 12_345
    with FollowAnalyticsHook().open_export(start_export("csv", size), 100_000) as export:
        reader = ExportReader(export, gzip_level)
        head = reader.read(1000)  # a read before, then blocks carry on from there
        blocks = [bytes(block) for block in reader.blocks()]
        assert reader.read(10) == b""
        total = len(head) + sum(map(len, blocks))
        assert reader.tell() == reader.bytes_out == total
    data = head + b"".join(blocks)
    assert (gzip.decompress(data) if gzip_level else data) == expected_export_bytes(size, "csv")
    assert all(blocks)  # no empty piece (gzip holds output back between inputs)
    if gzip_level is None:  # the download's own pieces, not joined
        assert max(map(len, blocks)) <= 100_000


def test_a_closed_reader_refuses_reads_instead_of_ending_early(start_export: Callable[..., str]) -> None:
    # A library that reads on after closing must not take the stopped download for the end of it.
    with FollowAnalyticsHook().open_export(start_export("csv", 3 * MiB), 100_000) as export:
        reader = ExportReader(export)
        assert len(reader.read(150_000)) == 150_000
        reader.close()
        with pytest.raises(ValueError, match="closed export reader"):
            reader.read(1)


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_gzip_is_one_member_that_gunzips_to_the_export(start_export: Callable[..., str], level: int) -> None:
    size = 3 * MiB
    compressed = _read_all(start_export("csv", size), 1 << 20, gzip_level=level)

    assert gzip.decompress(compressed) == expected_export_bytes(size, "csv")
    assert compressed[:2] == b"\x1f\x8b"
    assert compressed[4:8] == b"\x00\x00\x00\x00"  # mtime 0: the same export gives the same bytes
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decompressor.decompress(compressed)
    assert decompressor.eof
    assert decompressor.unused_data == b""


def test_gzip_of_an_empty_export_is_a_valid_empty_gzip(start_export: Callable[..., str]) -> None:
    assert gzip.decompress(_read_all(start_export("csv", 0), 1000, gzip_level=6)) == b""


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "truncate", "after_bytes": 150_000},
        {"kind": "reset", "after_bytes": 150_000},
        {"kind": "chunked_cut", "after_bytes": 150_000},
    ],
    ids=["truncate", "reset", "chunked-cut"],
)
def test_a_broken_download_raises_and_keeps_raising(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], fault: dict[str, Any]
) -> None:
    if fault["kind"] == "chunked_cut":
        emulator.download_mode = "chunked"
    url = start_export("csv", 400_000)
    emulator.add_fault("download", count=1, **fault)
    with FollowAnalyticsHook().open_export(url, 100_000) as export:
        reader = ExportReader(export)
        got = reader.read(100_000)
        assert len(got) == 100_000
        with pytest.raises(FollowAnalyticsDownloadError, match="broke off|truncated"):
            reader.read(200_000)  # never a short read standing for the end
        # A library that swallowed the error and reads again must not see a clean end of file.
        with pytest.raises(FollowAnalyticsDownloadError, match="failed before"):
            reader.read(10)


def test_stream_export_restarts_from_zero_and_hands_a_fresh_reader(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], task_log: pytest.LogCaptureFixture
) -> None:
    size = 500_000
    url = start_export("csv", size)
    emulator.add_fault("download", kind="truncate", after_bytes=200_000, count=2)
    attempts: list[int] = []

    def consume(reader: ExportReader) -> tuple[str, int]:
        attempts.append(reader.bytes_out)
        return sha256_of_chunks(iter(lambda: reader.read(64 * 1024), b""))

    hook = FollowAnalyticsHook()
    result = stream_export(hook, url, consume, attempts=3, log=hook.log)

    assert result == (expected_export_sha256(size, "csv"), size)
    assert attempts == [0, 0, 0]  # each attempt starts at byte zero
    assert task_log.text.count("restarting the transfer from zero") == 2
    assert len(emulator.requests_for("callback")) == 3


def test_stream_export_gives_up_after_its_attempts(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str]
) -> None:
    url = start_export("csv", 500_000)
    emulator.add_fault("download", kind="reset", after_bytes=1000, count=5)
    hook = FollowAnalyticsHook()
    with pytest.raises(FollowAnalyticsDownloadError, match=r"gave up after 2 download attempt\(s\)"):
        stream_export(hook, url, lambda reader: reader.read(-1), attempts=2, log=hook.log)
    assert len(emulator.requests_for("callback")) == 2


def test_other_errors_of_the_consumer_are_not_retried(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str]
) -> None:
    url = start_export("csv", 1000)
    hook = FollowAnalyticsHook()

    def consume(reader: ExportReader) -> None:
        raise OSError("the store refused the write")

    with pytest.raises(OSError, match="refused"):
        stream_export(hook, url, consume, attempts=3, log=hook.log)
    assert len(emulator.requests_for("callback")) == 1


def test_s3_part_size_grows_only_for_exports_that_need_more_than_10000_parts() -> None:
    assert part_size_for(8 * MiB, None) == 8 * MiB
    assert part_size_for(8 * MiB, 10 * (1 << 30)) == 8 * MiB
    big = 200 * (1 << 30)
    grown = part_size_for(8 * MiB, big)
    assert grown % MiB == 0
    assert grown * 10_000 >= big * 1.01  # room for gzip's worst case
    assert part_size_for(8 * MiB, 100 * (1 << 40)) == 5 * 1024 * MiB  # capped at S3's largest part


@pytest.mark.parametrize(
    ("server", "name", "gz", "expected"),
    [
        ("text/csv; charset=utf-8", "a.bin", False, "text/csv; charset=utf-8"),
        ("text/csv", "a", False, "text/csv; charset=utf-8"),
        ("application/vnd.ms-excel", "a.csv", False, "application/vnd.ms-excel"),
        ("", "a/b.CSV", False, "text/csv; charset=utf-8"),
        ("application/octet-stream", "a/b.xls", False, "application/vnd.ms-excel"),
        ("application/octet-stream", "a/b", False, "application/octet-stream"),
        ("", "a/b", False, "application/octet-stream"),
        ("text/csv", "a.csv.gz", True, "application/gzip"),
    ],
)
def test_content_type(server: str, name: str, gz: bool, expected: str) -> None:
    assert content_type_for(server, name, gz) == expected


def test_importing_the_transfers_loads_no_cloud_or_http_library() -> None:
    # What a DAG file pays at parse time, measured in a fresh interpreter after Airflow itself.
    # (Airflow 2's models and base classes, which the DAG processor has loaded, bring fsspec themselves.)
    base = (
        "airflow.sdk"
        if AIRFLOW_V_3
        else "airflow.models.dagbag, airflow.models.baseoperator, airflow.sensors.base, airflow.decorators"
    )
    code = (
        f"import sys, {base}\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_followanalytics.transfers.followanalytics_to_s3\n"
        "import airflow_provider_followanalytics.transfers.followanalytics_to_gcs\n"
        "import airflow_provider_followanalytics.transfers.followanalytics_to_object_storage\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout.split()

    assert "airflow_provider_followanalytics.transfers.followanalytics_to_s3" in loaded
    heavy = (
        "boto3",
        "botocore",
        "google",
        "aiohttp",
        "requests",
        "urllib3",
        "azure",
        "fsspec",
        "upath",
        "s3fs",
        "gcsfs",
        "adlfs",
        "airflow.providers.amazon",
        "airflow.providers.google",
        "airflow.providers.microsoft",
        "airflow.providers.openlineage",
    )
    assert [name for name in loaded if name.split(".")[0] in heavy or name.startswith(heavy)] == []
