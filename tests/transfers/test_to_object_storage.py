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
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3, AirflowFailException
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsConfigError,
    FollowAnalyticsDownloadError,
    FollowAnalyticsError,
    FollowAnalyticsExportExpiredError,
)
from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
    FollowAnalyticsToObjectStorageOperator,
)
from tests.transfers.conftest import MiB, sha256_of_chunks

BLOCK = 5 * MiB  # S3's smallest part: several blocks per test export on every store
SIZE = int(2.5 * BLOCK)


class Store:
    """One destination store: URLs to write to, and its own client to check what is there."""

    name = ""

    def url(self, name: str) -> str:
        raise NotImplementedError

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None if there is none."""
        raise NotImplementedError

    def put(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """Everything in the store's test area: objects, temporary files, pending uploads."""
        raise NotImplementedError


class LocalStore(Store):
    name = "file"

    def __init__(self, root: Path) -> None:
        self.root = root

    def url(self, name: str) -> str:
        return f"file://{self.root}/{name}"

    def read(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.exists() else None

    def put(self, name: str, data: bytes) -> None:
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(data)

    def leftovers(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())


class GCSStore(Store):
    name = "gs"

    def __init__(self, bucket_name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.bucket = storage.Client(project="test-project", credentials=AnonymousCredentials()).bucket(bucket_name)

    def url(self, name: str) -> str:
        return f"gs://google_cloud_default@{self.bucket.name}/{name}"

    def read(self, name: str) -> bytes | None:
        blob = self.bucket.get_blob(name)
        return None if blob is None else blob.download_as_bytes()

    def put(self, name: str, data: bytes) -> None:
        self.bucket.blob(name).upload_from_string(data)

    def leftovers(self) -> list[str]:
        return sorted(blob.name for blob in self.bucket.client.list_blobs(self.bucket.name))


class S3Store(Store):
    name = "s3"

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def url(self, name: str) -> str:
        return f"s3://aws_default@{self.bucket}/{name}"

    def read(self, name: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def leftovers(self) -> list[str]:
        keys = [item["Key"] for item in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])]
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sorted(keys + [f"pending multipart upload of {u['Key']}" for u in uploads])


class AzureStore(Store):
    """Azurite; leftovers are committed blobs (staged, uncommitted blocks are invisible and expire)."""

    name = "abfs"

    def __init__(self, container: Any, conn_id: str) -> None:
        self.container, self.conn_id = container, conn_id

    def url(self, name: str) -> str:
        return f"abfs://{self.conn_id}@{self.container.container_name}/{name}"

    def read(self, name: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return bytes(self.container.download_blob(name).readall())
        except ResourceNotFoundError:
            return None

    def put(self, name: str, data: bytes) -> None:
        self.container.upload_blob(name, data, overwrite=True)

    def leftovers(self) -> list[str]:
        return sorted(self.container.list_blob_names())


STORES = ["file", "gs", "s3", "abfs"]


@pytest.fixture(autouse=True)
def _fresh_object_stores(object_store_cache: dict[str, Any]) -> None:
    """Airflow caches one filesystem per protocol and connection id: connections change between tests."""


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path, fa_conn: dict[str, Any]) -> Store:
    if request.param == "file":
        return LocalStore(tmp_path / "lake")
    if request.param == "gs":
        request.getfixturevalue("gcs_object_storage")  # gs:// paths on the emulator, on 2.10 too
        return GCSStore(request.getfixturevalue("gcs_bucket"))
    if request.param == "abfs":
        return AzureStore(request.getfixturevalue("azure_container_client"), request.getfixturevalue("azure_conn"))
    return S3Store(request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket"))


def _operator(destination: Any, callback_url: str, **kwargs: Any) -> FollowAnalyticsToObjectStorageOperator:
    kwargs.setdefault("block_size", BLOCK)
    return FollowAnalyticsToObjectStorageOperator(
        task_id="to_store", callback_url=callback_url, destination=destination, **kwargs
    )


def _display(store: Store, name: str) -> str:
    url = store.url(name)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


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
        pytest.skip("a local folder is created, see test_local_parents_are_created")
    url = start_export("csv", 1000)
    scheme, _, rest = store.url("d.csv").partition("://")
    conn, _, bucket_and_key = rest.partition("@")
    bucket = bucket_and_key.split("/")[0]
    missing = f"{scheme}://{conn}@{bucket}-missing/d.csv"
    with pytest.raises(FollowAnalyticsError, match=rf"{bucket}-missing does not exist.*nothing was downloaded"):
        _operator(missing, url).execute({})
    assert emulator.requests_for("callback") == []


def test_local_parents_are_created_and_the_file_appears_whole(
    start_export: Callable[..., str], tmp_path: Path, fa_conn: dict[str, Any]
) -> None:
    url = start_export("csv", SIZE)
    target = tmp_path / "a" / "b" / "c" / "devices.csv"
    _operator(f"file://{target}", url).execute({})
    assert sorted(p.name for p in target.parent.iterdir()) == ["devices.csv"]
    assert sha256_of_chunks([target.read_bytes()]) == (expected_export_sha256(SIZE, "csv"), SIZE)


def test_a_local_folder_that_cannot_be_created_fails_before_the_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], tmp_path: Path, fa_conn: dict[str, Any]
) -> None:
    (tmp_path / "lake").write_text("a file where the folder should be")
    url = start_export("csv", SIZE)
    emulator.requests.clear()
    with pytest.raises(
        FollowAnalyticsError, match=r"Cannot create the folder .*/lake/devices of .*nothing was downloaded"
    ):
        _operator(f"file://{tmp_path}/lake/devices/x.csv", url).execute({})
    assert emulator.requests_for("callback") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]


def test_a_local_folder_without_write_access_fails_before_the_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], fa_conn: dict[str, Any]
) -> None:
    # /sys refuses new files even to root (the suite may run as root, which every mode bit lets through).
    if not os.path.isdir("/sys/kernel") or os.path.exists("/sys/devices.csv"):
        pytest.skip("needs Linux's /sys")
    url = start_export("csv", SIZE)
    emulator.requests.clear()
    with pytest.raises(
        FollowAnalyticsError, match=r"Cannot write in the folder /sys of file:///sys/devices.csv: Permission denied"
    ):
        _operator("file:///sys/devices.csv", url).execute({})
    assert emulator.requests_for("callback") == []


def test_a_local_file_is_renamed_into_place_only_at_the_end(
    monkeypatch: pytest.MonkeyPatch, start_export: Callable[..., str], tmp_path: Path, fa_conn: dict[str, Any]
) -> None:
    from airflow_provider_followanalytics.hooks._export_reader import ExportReader

    target = tmp_path / "devices.csv"
    seen: list[list[str]] = []
    real_blocks = ExportReader.blocks

    def blocks(self: Any) -> Iterator[memoryview]:
        for block in real_blocks(self):
            seen.append(sorted(p.name for p in tmp_path.iterdir()))
            yield block
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    monkeypatch.setattr(ExportReader, "blocks", blocks)
    _operator(f"file://{target}", start_export("csv", SIZE)).execute({})

    assert len(seen) >= 4  # every download piece (1 MiB), then the end of the export
    for names in seen:  # while the export streams, only the hidden temporary file exists
        assert len(names) == 1
        assert names[0].startswith(".devices.csv.")
        assert names[0].endswith(".partial")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devices.csv"]


@pytest.mark.parametrize(
    ("destination", "fragment"),
    [
        ("/data/x.csv", "is not a URL"),
        ("s3://aws_default@bucket/", "names no object"),
    ],
)
def test_bad_destinations_fail_before_any_request(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], destination: str, fragment: str
) -> None:
    url = start_export("csv", 1000)
    emulator.requests.clear()
    with pytest.raises(FollowAnalyticsConfigError, match=fragment):
        _operator(destination, url).execute({})
    assert emulator.requests == []


def test_static_destination_is_declared_as_an_outlet_without_the_conn_id() -> None:
    operator = _operator("file:///data/lake/devices.csv", "x")
    assert [outlet.uri for outlet in operator.outlets] == ["file:///data/lake/devices.csv"]
    assert type(operator.outlets[0]).__name__ == ("Asset" if AIRFLOW_V_3 else "Dataset")


def test_templated_destination_has_no_parse_time_outlet() -> None:
    operator = _operator("file:///data/{{ ds }}/devices.csv", "x")
    assert operator.outlets == []
    assert set(FollowAnalyticsToObjectStorageOperator.template_fields) >= {
        "callback_url",
        "destination",
        "conn_id",
        "followanalytics_conn_id",
    }


def test_templated_destination_is_rendered(
    start_export: Callable[..., str], tmp_path: Path, fa_conn: dict[str, Any]
) -> None:
    url = start_export("csv", 1000)
    operator = _operator(str(tmp_path.as_uri()) + "/{{ params.day }}/d.csv", url)
    operator.render_template_fields({"params": {"day": "2024-03-10"}})
    assert operator.execute({}) == f"file://{tmp_path}/2024-03-10/d.csv"
    assert (tmp_path / "2024-03-10" / "d.csv").stat().st_size == 1000


@pytest.mark.parametrize(
    ("destination", "module_name", "requirement"),
    [
        ("s3://aws_default@lake/d.csv", "s3fs", "apache-airflow-providers-amazon[s3fs]"),
        ("gs://lake/d.csv", "gcsfs", "airflow-provider-followanalytics[google]"),
        ("wasb://azure@lake/d.csv", "adlfs", "airflow-provider-followanalytics[azure]"),
    ],
)
def test_a_missing_store_library_fails_when_the_dag_is_parsed(
    monkeypatch: pytest.MonkeyPatch, destination: str, module_name: str, requirement: str
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == module_name else real_find_spec(name, *args)

    # No local server can uninstall a package: hide it from the import system instead.
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    with pytest.raises(FollowAnalyticsConfigError, match=re.escape(f"pip install '{requirement}'")):
        _operator(destination, "x")


def test_bad_block_size_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(FollowAnalyticsConfigError, match="block_size=1000 is invalid; expected at least 256 KiB"):
        _operator("file:///tmp/x.csv", "x", block_size=1000)


@pytest.mark.parametrize(
    ("argument", "value"), [("wait_timeout", -1), ("wait_timeout", "1h"), ("poll_interval", 0), ("poll_interval", True)]
)
def test_bad_wait_settings_are_refused_when_the_dag_is_parsed(argument: str, value: Any) -> None:
    expected = re.escape(f"{argument}={value!r} ") + ".*; expected a number of seconds > 0"
    with pytest.raises(FollowAnalyticsConfigError, match=expected):
        _operator("file:///tmp/x.csv", "x", deferrable=True, **{argument: value})


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
