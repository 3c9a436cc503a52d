"""The streaming building blocks on their own: blocks, gzip, the pipe, content types, import cost."""

from __future__ import annotations

import gzip
import itertools
import os
import subprocess
import sys
import threading
import zlib

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import expected_export_bytes
from airflow_provider_followanalytics.transfers._streaming import (
    BlockPipe,
    DownloadAborted,
    UploaderStopped,
    content_type_for,
    gzip_chunks,
    iter_blocks,
)
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import _part_sizes


@pytest.mark.parametrize(
    ("chunk_sizes", "block", "expected"),
    [
        ([3, 3, 3], 4, [4, 4, 1]),
        ([4, 4], 4, [4, 4]),
        ([10], 3, [3, 3, 3, 1]),
        ([1] * 5, 5, [5]),
        ([], 4, [0]),
        ([2], 4, [2]),
    ],
)
def test_iter_blocks_regroups_without_losing_a_byte(chunk_sizes: list[int], block: int, expected: list[int]) -> None:
    data = bytes(range(sum(chunk_sizes)))
    chunks, offset = [], 0
    for size in chunk_sizes:
        chunks.append(data[offset : offset + size])
        offset += size

    blocks = list(iter_blocks(chunks, itertools.repeat(block)))

    assert [len(b) for b in blocks] == expected
    assert b"".join(blocks) == data


def test_iter_blocks_yields_the_last_block_only_after_the_stream_ended() -> None:
    ended = []

    def chunks():  # type: ignore[no-untyped-def]
        yield b"abcd"
        yield b"ef"
        ended.append(True)

    blocks = iter_blocks(chunks(), itertools.repeat(4))
    assert next(blocks) == b"abcd"
    assert ended == []
    assert next(blocks) == b"ef"
    assert ended == [True]


def test_iter_blocks_follows_the_size_schedule() -> None:
    blocks = list(iter_blocks([b"x" * 10], iter([2, 3, 100])))
    assert [len(b) for b in blocks] == [2, 3, 5]


def test_s3_part_sizes_double_every_2500_parts_and_cover_huge_exports() -> None:
    sizes = list(itertools.islice(_part_sizes(8 << 20), 10_000))
    assert sizes[0] == sizes[2499] == 8 << 20
    assert sizes[2500] == 16 << 20
    assert sizes[-1] == 64 << 20
    assert sum(sizes) > 290 * (1 << 30)  # 10,000 parts hold almost 300 GiB


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_gzip_chunks_is_one_member_that_gunzips_to_the_input(level: int) -> None:
    data = expected_export_bytes(3 << 20, "csv")
    chunks = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]

    compressed = b"".join(gzip_chunks(chunks, level))

    assert gzip.decompress(compressed) == data
    assert compressed[:2] == b"\x1f\x8b"
    assert compressed[4:8] == b"\x00\x00\x00\x00"  # mtime 0: the same export gives the same bytes
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decompressor.decompress(compressed)
    assert decompressor.eof
    assert decompressor.unused_data == b""


def test_gzip_of_an_empty_export_is_a_valid_empty_gzip() -> None:
    assert gzip.decompress(b"".join(gzip_chunks([], 6))) == b""


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


def _reader(pipe: BlockPipe, size: int, out: list[bytes | BaseException]) -> threading.Thread:
    def read() -> None:
        try:
            while True:
                data = pipe.read(size)
                out.append(data)
                if len(data) < size:
                    return
        except BaseException as exc:
            out.append(exc)
        finally:
            pipe.close_reader()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("read_size", [4, 3, 8])
def test_pipe_delivers_every_byte_then_a_short_read(read_size: int) -> None:
    pipe = BlockPipe()
    out: list[bytes | BaseException] = []
    reader = _reader(pipe, read_size, out)
    for block in iter_blocks([b"0123456789"], itertools.repeat(4)):
        pipe.put(block)
    pipe.finish()
    reader.join(5)

    assert all(isinstance(item, bytes) for item in out)
    assert b"".join(out) == b"0123456789"  # type: ignore[arg-type]
    assert all(len(item) == read_size for item in out[:-1])  # type: ignore[arg-type]
    assert len(out[-1]) < read_size  # type: ignore[arg-type]
    assert pipe.tell() == 10


def test_pipe_put_waits_for_the_reader() -> None:
    pipe = BlockPipe()
    done = threading.Event()

    def put() -> None:
        pipe.put(bytearray(b"abcd"))
        done.set()

    writer = threading.Thread(target=put, daemon=True)
    writer.start()
    assert not done.wait(0.2)  # nobody read the block: the download must not run ahead
    assert pipe.read(4) == b"abcd"
    assert done.wait(5)


def test_a_failed_writer_makes_the_reader_raise_instead_of_ending_the_stream() -> None:
    pipe = BlockPipe()
    out: list[bytes | BaseException] = []
    reader = _reader(pipe, 4, out)
    pipe.put(bytearray(b"abcd"))
    pipe.fail("FollowAnalyticsDownloadError: truncated")
    reader.join(5)

    assert out[0] == b"abcd"
    assert isinstance(out[-1], DownloadAborted)
    assert "truncated" in str(out[-1])
    assert not any(isinstance(item, bytes) and len(item) < 4 for item in out)  # no short read = no EOF


def test_a_stopped_reader_makes_the_writer_raise() -> None:
    pipe = BlockPipe()
    pipe.close_reader()
    with pytest.raises(UploaderStopped):
        pipe.put(bytearray(b"abcd"))


def test_importing_the_transfers_loads_no_cloud_or_http_library() -> None:
    # What a DAG file pays at parse time, measured in a fresh interpreter after Airflow itself.
    base = "airflow.sdk" if AIRFLOW_V_3 else "airflow"
    code = (
        f"import sys, {base}\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_followanalytics.transfers.followanalytics_to_s3\n"
        "import airflow_provider_followanalytics.transfers.followanalytics_to_gcs\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout.split()

    assert "airflow_provider_followanalytics.transfers.followanalytics_to_s3" in loaded
    heavy = ("boto3", "botocore", "google", "aiohttp", "requests", "urllib3", "airflow.providers.amazon")
    assert [name for name in loaded if name.split(".")[0] in heavy or name.startswith(heavy)] == []
