"""The exports' generated content: exact sizes, deterministic bytes, well-formed CSV per kind of export, speed."""

from __future__ import annotations

import hashlib
import time

import pytest

from airflow_provider_followanalytics.emulator import expected_export_bytes, expected_export_sha256, export_chunks
from airflow_provider_followanalytics.emulator.content import CSV_HEADER, CSV_HEADERS, EXPORT_KINDS, XLS_MAGIC
from airflow_provider_followanalytics.emulator.server import EXPORT_KIND_OF_ENDPOINT

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only


# Content ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["csv", "xls"])
@pytest.mark.parametrize("size", [0, 1, 7, 8, len(CSV_HEADER), 1000, (1 << 20) - 1, (1 << 20) + 1, 3 * (1 << 20) + 7])
def test_export_chunks_exact_size(file_format: str, size: int) -> None:
    for chunk_size in (1 << 20, 65536, 1000):
        chunks = list(export_chunks(size, file_format, seed=1, chunk_size=chunk_size))
        assert sum(len(c) for c in chunks) == size
        assert all(0 < len(c) <= chunk_size for c in chunks)
    data = expected_export_bytes(size, file_format, seed=1)
    assert len(data) == size
    assert b"".join(export_chunks(size, file_format, seed=1, chunk_size=999)) == data
    assert expected_export_sha256(size, file_format, seed=1) == hashlib.sha256(data).hexdigest()


def test_export_content_is_deterministic_and_well_formed() -> None:
    size = 3 * (1 << 20)
    csv = expected_export_bytes(size, "csv", seed=0)
    assert csv == expected_export_bytes(size, "csv", seed=0)
    assert csv != expected_export_bytes(size, "csv", seed=1)
    assert csv[:5000] == expected_export_bytes(5000, "csv", seed=0)  # a shorter export is a prefix
    assert csv.startswith(b"device_id,current_user_id,platform,app_version,last_seen_at,city\n")
    text = csv[: csv.rindex(b"\n") + 1].decode("utf-8")
    assert "Montréal" in text
    lines = text.splitlines()
    assert lines.count(lines[0]) == 1  # one header line
    assert all(line.count(",") >= 5 for line in lines[1:1000])

    xls = expected_export_bytes(size, "xls", seed=0)
    assert xls.startswith(XLS_MAGIC)
    assert xls == expected_export_bytes(size, "xls", seed=0)
    assert xls != expected_export_bytes(size, "xls", seed=1)
    assert expected_export_sha256(size, "csv") != expected_export_sha256(size, "xls")

    with pytest.raises(ValueError, match="format"):
        list(export_chunks(10, "pdf"))
    with pytest.raises(ValueError, match="size"):
        list(export_chunks(-1))
    with pytest.raises(ValueError, match="chunk_size"):
        list(export_chunks(10, chunk_size=0))


def test_export_chunks_is_fast() -> None:
    size = 64 * (1 << 20)
    started = time.monotonic()
    total = sum(len(chunk) for chunk in export_chunks(size, "csv", seed=5))
    assert total == size
    # Margin: 64 MiB at several GB/s is ~0.05 s; 5 s fails only below ~13 MiB/s, a broken generator.
    assert time.monotonic() - started < 5.0


def test_each_kind_of_export_has_its_own_columns_and_whole_rows() -> None:
    import csv
    import io

    assert set(EXPORT_KIND_OF_ENDPOINT.values()) == set(EXPORT_KINDS)
    assert CSV_HEADERS["events"].startswith(b"event_id,event_name,")
    assert CSV_HEADERS["performance"].startswith(b"date,app_identifier,downloads,")
    assert len(set(CSV_HEADERS.values())) == len(EXPORT_KINDS)
    for kind in EXPORT_KINDS:
        data = expected_export_bytes(3 << 20, "csv", kind=kind)  # past the 1 MiB block: it repeats
        assert data == expected_export_bytes(3 << 20, "csv", kind=kind)
        assert data[:5000] == expected_export_bytes(5000, "csv", kind=kind)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8", errors="ignore"))))[:-1]  # the last one is cut
        header = CSV_HEADERS[kind].decode().strip().split(",")
        assert rows[0] == header
        assert {len(row) for row in rows[1:]} == {len(header)}, kind
        assert expected_export_bytes(1000, "xls", kind=kind).startswith(XLS_MAGIC)
    assert expected_export_sha256(1000, "xls", kind="events") != expected_export_sha256(1000, "xls")
    with pytest.raises(ValueError, match="unknown export kind 'bogus'"):
        list(export_chunks(10, kind="bogus"))
