"""FollowAnalyticsToObjectStorageOperator on every store, over real sockets.

Local folder, moto's S3 server (s3fs), the GCS emulator (gcsfs) and Azurite (adlfs through the
microsoft-azure provider). Each store is read back with its own client; "nothing at the
destination" means no object, no temporary file, and no pending upload where the store can
list them (S3 multipart uploads, Azure blobs holding only uncommitted blocks).
"""

from __future__ import annotations

import gc
import gzip
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AirflowFailException
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsDownloadError,
    FollowAnalyticsError,
    FollowAnalyticsExportExpiredError,
)
from tests.transfers._object_stores import (
    BLOCK,
    SIZE,
    LocalStore,
    Store,
    _display,
    _fresh_object_stores,  # noqa: F401 - autouse
    _operator,
)
from tests.transfers.conftest import sha256_of_chunks


@pytest.mark.parametrize(
    ("file_format", "download_mode", "size"),
    [
        pytest.param("csv", "content-length", SIZE, id="csv-content-length"),
        pytest.param("xls", "chunked", SIZE, id="xls-chunked"),
        pytest.param("csv", "chunked", 1000, id="csv-small"),
        pytest.param("xls", "content-length", 0, id="empty"),
    ],
)
def test_round_trip_is_byte_exact(
    emulator: FollowAnalyticsEmulator,
    start_export: Callable[..., str],
    store: Store,
    file_format: str,
    download_mode: str,
    size: int,
) -> None:
    emulator.download_mode = download_mode
    url = start_export(file_format, size)
    name = f"exports/deep/devices.{file_format}"

    result = _operator(store.url(name), url).execute({})

    assert result == _display(store, name)
    data = store.read(name)
    assert data is not None
    assert sha256_of_chunks([data]) == (expected_export_sha256(size, file_format), size)
    assert store.leftovers() == [name]  # no temporary file, no pending upload
    assert len(emulator.requests_for("callback")) == 1
    expected_type = {"csv": "text/csv; charset=utf-8", "xls": "application/vnd.ms-excel"}[file_format]
    if not (store.name == "s3" and size == 0):  # s3fs writes an empty object with touch(), which sends no type
        assert store.content_type(name) in (None, expected_type)  # None: a local file keeps no type
        assert (store.content_type(name) is None) == (store.name == "file")


def test_content_type_is_kept_as_given_and_gzip_says_so(start_export: Callable[..., str], store: Store) -> None:
    _operator(store.url("devices.txt"), start_export("csv", 1000), content_type="text/plain").execute({})
    _operator(store.url("devices.csv.gz"), start_export("csv", 1000), gzip=True).execute({})
    if store.name == "file":
        assert store.content_type("devices.txt") is None
    else:
        assert store.content_type("devices.txt") == "text/plain"
        assert store.content_type("devices.csv.gz") == "application/gzip"


def test_gzip_gunzips_to_the_export(start_export: Callable[..., str], store: Store) -> None:
    url = start_export("xls", SIZE)  # random bytes: the gzip output still spans several blocks
    _operator(store.url("devices.xls.gz"), url, gzip=True, gzip_level=1).execute({})
    data = store.read("devices.xls.gz")
    assert data is not None
    assert len(data) > 2 * BLOCK
    assert sha256_of_chunks([gzip.decompress(data)]) == (expected_export_sha256(SIZE, "xls"), SIZE)


def test_an_object_storage_path_is_accepted(start_export: Callable[..., str], store: Store) -> None:
    from airflow_provider_followanalytics._compat import object_storage_path

    url = start_export("csv", 1000)
    destination = object_storage_path(store.url("d.csv"))
    assert _operator(destination, url).execute({}) == _display(store, "d.csv")
    assert hashlib.sha256(store.read("d.csv") or b"").hexdigest() == expected_export_sha256(1000, "csv")


DOWNLOAD_FAULTS = [
    pytest.param({"kind": "truncate", "after_bytes": int(1.5 * BLOCK)}, id="truncated"),
    pytest.param({"kind": "reset", "after_bytes": int(1.2 * BLOCK)}, id="reset"),
    pytest.param({"kind": "truncate", "after_bytes": 1000}, id="truncated-in-the-first-block"),
]


@pytest.mark.parametrize("fault", DOWNLOAD_FAULTS)
def test_a_download_that_keeps_breaking_leaves_nothing(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], store: Store, fault: dict[str, Any]
) -> None:
    url = start_export("csv", SIZE)
    emulator.add_fault("download", count=2, **fault)

    with pytest.raises(FollowAnalyticsDownloadError, match=r"gave up after 2 download attempt\(s\)"):
        _operator(store.url("d.csv"), url, download_attempts=2).execute({})

    gc.collect()  # fsspec files commit what they hold in __del__ too: it must find nothing to commit
    assert store.leftovers() == []
    assert len(emulator.requests_for("callback")) == 2


def test_a_download_that_breaks_once_restarts_from_zero(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], store: Store
) -> None:
    url = start_export("csv", SIZE)
    emulator.add_fault("download", kind="truncate", after_bytes=int(1.5 * BLOCK), count=1)
    _operator(store.url("d.csv"), url).execute({})
    assert sha256_of_chunks([store.read("d.csv") or b""]) == (expected_export_sha256(SIZE, "csv"), SIZE)
    assert store.leftovers() == ["d.csv"]


def test_a_failed_transfer_keeps_the_previous_object(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], store: Store
) -> None:
    store.put("d.csv", b"previous run")
    url = start_export("csv", SIZE)
    emulator.add_fault("download", kind="truncate", after_bytes=2 * BLOCK + 5, count=1)

    with pytest.raises(FollowAnalyticsDownloadError):
        _operator(store.url("d.csv"), url, replace=True, download_attempts=1).execute({})

    assert store.read("d.csv") == b"previous run"
    assert store.leftovers() == ["d.csv"]


def test_expired_link_fails_without_retries_and_writes_nothing(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], store: Store
) -> None:
    url = start_export("csv", 1000)
    emulator.expire_after_polls = 1
    with pytest.raises(FollowAnalyticsExportExpiredError, match="HTTP 400") as caught:
        _operator(store.url("d.csv"), url).execute({})
    assert isinstance(caught.value, AirflowFailException)
    assert store.leftovers() == []


def _fail_writes_after(file: Any, limit: int) -> Any:
    """Make a store's real file fail its writes once ``limit`` bytes went through (a full disk, a dropped link)."""
    real_write, written = file.write, [0]

    def write(data: bytes) -> int:
        if written[0] + len(data) > limit:
            raise OSError(28, "No space left on device (injected by the test)")
        written[0] += len(data)
        return int(real_write(data))

    file.write = write
    return file


def test_an_upload_side_failure_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, start_export: Callable[..., str], store: Store
) -> None:
    # No local server fails a write on demand: the store's real file object is wrapped, so what
    # it already sent (parts, chunks, a temporary file) is really there when the write fails.
    from airflow_provider_followanalytics._compat import object_storage_path

    fs = object_storage_path(store.url("d.csv")).fs
    real_open = fs.open
    monkeypatch.setattr(fs, "open", lambda *a, **k: _fail_writes_after(real_open(*a, **k), 2 * BLOCK))
    url = start_export("csv", SIZE)

    with pytest.raises(OSError, match="No space left"):
        _operator(store.url("d.csv"), url).execute({})

    gc.collect()  # fsspec files commit what they hold in __del__ too: it must find nothing to commit
    assert store.leftovers() == []


def test_replace_false_fails_before_any_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], store: Store
) -> None:
    store.put("d.csv", b"previous run")
    url = start_export("csv", 1000)
    with pytest.raises(FollowAnalyticsError, match="already exists and replace=False; nothing was downloaded"):
        _operator(store.url("d.csv"), url).execute({})
    assert emulator.requests_for("callback") == []
    assert store.read("d.csv") == b"previous run"


def test_replace_true_overwrites(start_export: Callable[..., str], store: Store) -> None:
    store.put("d.csv", b"previous run")
    _operator(store.url("d.csv"), start_export("csv", 1000), replace=True).execute({})
    assert hashlib.sha256(store.read("d.csv") or b"").hexdigest() == expected_export_sha256(1000, "csv")


def test_a_missing_bucket_fails_before_any_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], store: Store
) -> None:
    if isinstance(store, LocalStore):
        pytest.skip("a local folder is created, see test_to_object_storage_local.py")
    url = start_export("csv", 1000)
    scheme, _, rest = store.url("d.csv").partition("://")
    conn, _, bucket_and_key = rest.partition("@")
    bucket = bucket_and_key.split("/")[0]
    missing = f"{scheme}://{conn}@{bucket}-missing/d.csv"
    with pytest.raises(FollowAnalyticsError, match=rf"{bucket}-missing does not exist.*nothing was downloaded"):
        _operator(missing, url).execute({})
    assert emulator.requests_for("callback") == []


@pytest.mark.parametrize("store", ["s3", "gs"], indirect=True)
def test_a_failure_to_publish_the_staged_upload_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, start_export: Callable[..., str], store: Store
) -> None:
    # Every block is in the store when the final commit (S3's CompleteMultipartUpload, GCS's last
    # chunk) fails; no local server refuses that step on demand, so the real file's commit raises.
    from airflow_provider_followanalytics._compat import object_storage_path

    fs = object_storage_path(store.url("d.csv")).fs
    real_open = fs.open

    def open_failing_commit(*args: Any, **kwargs: Any) -> Any:
        file = real_open(*args, **kwargs)
        file.commit = lambda: (_ for _ in ()).throw(OSError(5, "commit refused (injected by the test)"))
        return file

    monkeypatch.setattr(fs, "open", open_failing_commit)
    with pytest.raises(OSError, match="commit refused"):
        _operator(store.url("d.csv"), start_export("csv", SIZE)).execute({})

    gc.collect()
    assert store.leftovers() == []
