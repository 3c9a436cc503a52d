"""What ``ObjectStoragePath`` does on each store the transfers write to, on both Airflow versions.

Facts the object-storage transfer builds on (docs/object-storage-stores.md sums them up): each
store is a real stand-in (a local folder, Azurite, moto's S3 server, the GCS emulator) reached
through an Airflow connection named in the URL (``scheme://conn_id@bucket/key``); every object is
checked with the store's own client, not through the path that wrote it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3

if AIRFLOW_V_3:
    from airflow.sdk import ObjectStoragePath
else:
    from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]

MiB = 1 << 20
STORES = ["file", "abfs", "s3", "gs"]


class Boom(Exception):
    """The failure injected in the middle of a write."""


@dataclass
class Store:
    """One destination: the URL of a key, and the store's own client to check what is there."""

    scheme: str
    url: Callable[[str], str]
    read: Callable[[str], bytes | None]  # None: no object under that key
    keys: Callable[[], list[str]]


pytestmark = pytest.mark.usefixtures("object_store_cache")


def _local_store(tmp_path: Path) -> Store:
    root = tmp_path / "lake"
    root.mkdir()

    def read(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None

    return Store(
        "file",
        url=lambda key: f"file://{root}/{key}",
        read=read,
        keys=lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
    )


def _azure_store(request: pytest.FixtureRequest) -> Store:
    from azure.core.exceptions import ResourceNotFoundError

    conn_id = request.getfixturevalue("azure_conn")
    container = request.getfixturevalue("azure_container")
    client = request.getfixturevalue("azure_container_client")

    def read(key: str) -> bytes | None:
        try:
            return client.download_blob(key).readall()
        except ResourceNotFoundError:
            return None

    return Store(
        "abfs",
        url=lambda key: f"abfs://{conn_id}@{container}/{key}",
        read=read,
        keys=lambda: sorted(client.list_blob_names()),
    )


def _s3_store(request: pytest.FixtureRequest) -> Store:
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")

    def read(key: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    return Store(
        "s3",
        url=lambda key: f"s3://aws_default@{bucket}/{key}",
        read=read,
        keys=lambda: sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])),
    )


def _gcs_store(request: pytest.FixtureRequest) -> Store:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    conn_id = request.getfixturevalue("gcs_object_storage")
    bucket_name = request.getfixturevalue("gcs_bucket")
    bucket = storage.Client(project="test-project", credentials=AnonymousCredentials()).bucket(bucket_name)

    def read(key: str) -> bytes | None:
        blob = bucket.get_blob(key)
        return None if blob is None else blob.download_as_bytes()

    return Store(
        "gs",
        url=lambda key: f"gs://{conn_id}@{bucket_name}/{key}",
        read=read,
        keys=lambda: sorted(b.name for b in bucket.list_blobs()),
    )


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each destination in turn, empty."""
    if request.param == "file":
        return _local_store(tmp_path)
    return {"abfs": _azure_store, "s3": _s3_store, "gs": _gcs_store}[request.param](request)


def _payload(size: int) -> bytes:
    return os.urandom(size)


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _fail_inside_with(path: Any, data: bytes, **open_kwargs: Any) -> Any:
    """Write ``data`` through ``path.open("wb")``, then raise inside the ``with``; returns the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("wb", **open_kwargs)
    with pytest.raises(Boom):
        _write_then_raise(handle, data)
    return handle


def _write_then_raise(handle: Any, data: bytes) -> None:
    with handle:
        handle.write(data)
        raise Boom


# ------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [0, 1, 3 * MiB + 17])
def test_bytes_written_through_the_path_come_back_byte_exact(store: Store, size: int) -> None:
    data = _payload(size)
    path = ObjectStoragePath(store.url("exports/2026-12-01/devices.csv"))
    path.parent.mkdir(parents=True, exist_ok=True)  # needed on file://, harmless on the object stores
    with path.open("wb") as handle:
        for start in range(0, size, MiB):  # in chunks, as a streamed transfer writes
            handle.write(data[start : start + MiB])
    assert _sha(store.read("exports/2026-12-01/devices.csv")) == _sha(data)
    assert path.read_bytes() == data
    assert store.keys() == ["exports/2026-12-01/devices.csv"]


def test_the_connection_id_comes_from_the_url(store: Store) -> None:
    path = ObjectStoragePath(store.url("a/b.csv"))
    expected = {"file": None, "abfs": "wasb_default", "s3": "aws_default", "gs": "google_cloud_default"}
    # Airflow 3 exposes it as .conn_id; on 2.10 it is kept in storage_options.
    conn_id = path.conn_id if AIRFLOW_V_3 else path.storage_options.get("conn_id")
    assert conn_id == expected[store.scheme]
    assert path.protocol == store.scheme
    assert str(path) == store.url("a/b.csv")


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_a_local_write_needs_its_parent_folder(store: Store) -> None:
    path = ObjectStoragePath(store.url("missing/folder/x.csv"))
    with pytest.raises(FileNotFoundError):
        path.open("wb")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    assert store.read("missing/folder/x.csv") == b"x"


# ----------------------------------------------------------------- what a failed write leaves behind


@pytest.mark.parametrize("size", [100, 3 * MiB])
def test_a_write_that_raises_inside_with_commits_the_partial_object(store: Store, size: int) -> None:
    # fsspec files commit what they hold on close(), and __exit__ closes them after an exception too.
    data = _payload(size)
    path = ObjectStoragePath(store.url("out/partial.csv"))
    _fail_inside_with(path, data)
    assert _sha(store.read("out/partial.csv")) == _sha(data), "the half-written object is there, looking complete"


@pytest.mark.parametrize("store", ["s3", "file"], indirect=True)
def test_autocommit_false_close_then_discard_leaves_nothing(store: Store) -> None:
    # The pattern of fsspec's transactions: close() sends what is buffered but commits nothing,
    # then commit() publishes the object, or discard() drops what was sent.
    path = ObjectStoragePath(store.url("out/discarded.csv"))
    handle = _fail_inside_with(path, _payload(3 * MiB), autocommit=False)
    assert handle.closed
    assert store.read("out/discarded.csv") is None
    handle.discard()
    assert store.read("out/discarded.csv") is None
    assert store.keys() == []


@pytest.mark.parametrize("store", ["s3", "gs", "file"], indirect=True)
def test_autocommit_false_commits_only_on_commit(store: Store) -> None:
    data = _payload(3 * MiB)
    path = ObjectStoragePath(store.url("out/committed.csv"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb", autocommit=False) as handle:
        handle.write(data)
    assert store.read("out/committed.csv") is None, "closed but not committed: nothing yet"
    handle.commit()
    assert _sha(store.read("out/committed.csv")) == _sha(data)


@pytest.mark.parametrize("store", ["gs"], indirect=True)
def test_gcs_uncommitted_upload_stays_invisible_and_the_emulator_cannot_cancel_it(store: Store) -> None:
    # GCSFile.discard() cancels the resumable upload session with a DELETE on its URL: real GCS does,
    # gcp-storage-emulator answers 501 (and gcsfs retries that 6 times, ~30 s, before raising).
    # Either way an upload that was never finalised is no object.
    import requests

    path = ObjectStoragePath(store.url("out/discarded.csv"))
    handle = _fail_inside_with(path, _payload(3 * MiB), autocommit=False)
    assert handle.closed
    assert handle.location  # the resumable upload session, still open
    assert store.read("out/discarded.csv") is None
    assert requests.delete(handle.location, timeout=10).status_code == 501
    assert store.keys() == []


@pytest.mark.parametrize("store", ["s3"], indirect=True)
@pytest.mark.parametrize("size", [3 * MiB, 6 * MiB])  # one part at close / one part before it, one at close
def test_s3_discard_aborts_the_multipart_upload(store: Store, size: int, s3_client: Any, s3_bucket: str) -> None:
    path = ObjectStoragePath(store.url("out/big.csv"))
    handle = _fail_inside_with(path, _payload(size), autocommit=False, block_size=5 * MiB)
    assert [u["Key"] for u in s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])] == ["out/big.csv"]
    handle.discard()
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert store.keys() == []


@pytest.mark.parametrize("store", ["s3"], indirect=True)
def test_s3_discard_before_close_makes_close_fail(store: Store) -> None:
    # S3File.discard() drops the buffer: the close() of the with block then fails on it. Discard after close.
    def discard_inside_with(handle: Any) -> None:
        with handle:
            handle.write(b"abc")
            handle.discard()

    path = ObjectStoragePath(store.url("out/x.csv"))
    with pytest.raises(AttributeError):
        discard_inside_with(path.open("wb", autocommit=False))
    assert store.keys() == []


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_a_local_uncommitted_file_is_written_in_the_system_temp_folder(store: Store) -> None:
    # autocommit=False writes to tempfile.mkstemp() (not beside the destination) and commit() moves it:
    # across file systems that move is a copy, so the destination can be seen half-written.
    path = ObjectStoragePath(store.url("out/x.csv"))
    path.parent.mkdir(parents=True)
    with path.open("wb", autocommit=False) as handle:
        handle.write(b"abc")
    assert Path(handle.temp).parent == Path(tempfile.gettempdir())
    assert Path(handle.temp).read_bytes() == b"abc"
    handle.discard()
    assert not Path(handle.temp).exists()


@pytest.mark.parametrize("store", ["abfs"], indirect=True)
def test_adlfs_ignores_autocommit_false_and_commits_on_close(store: Store) -> None:
    data = _payload(100)
    path = ObjectStoragePath(store.url("out/partial.csv"))
    handle = _fail_inside_with(path, data, autocommit=False)
    assert _sha(store.read("out/partial.csv")) == _sha(data)
    handle.discard()  # fsspec's no-op default: the committed blob stays
    assert store.keys() == ["out/partial.csv"]


@pytest.mark.parametrize("store", ["abfs"], indirect=True)
def test_adlfs_stages_blocks_while_writing_and_only_close_commits_them(
    store: Store, azure_container_client: Any
) -> None:
    # AzureBlobFile stages a block each time its buffer passes block_size; close() (also from __exit__
    # and __del__) commits the block list. A file marked closed before that commits nothing: its staged
    # blocks stay uncommitted (Azure drops them after 7 days) and no blob is visible.
    def abandon_on_failure(raw: Any) -> None:
        with raw:
            try:
                raw.write(_payload(3 * MiB + 5))
                raw.flush()  # stage what passed block_size, as a long write does between its chunks
                raise Boom
            except Boom:
                raw.closed = True  # abandon: the __exit__ that follows finds the file closed
                raise

    path = ObjectStoragePath(store.url("out/abandoned.csv"))
    raw = path.fs.open(path.path, "wb", block_size=MiB)
    with pytest.raises(Boom):
        abandon_on_failure(raw)
    assert len(raw._block_list) == 4  # a non-final flush stages the whole buffer, its 5-byte tail too
    assert store.keys() == []
    listed = {b.name for b in azure_container_client.list_blobs(include=["uncommittedblobs"])}
    assert listed == {"out/abandoned.csv"}, "the staged blocks exist, as an uncommitted blob only"
    assert store.read("out/abandoned.csv") is None


def test_the_file_object_of_path_open_is_a_wrapper_that_reports_every_write(tmp_path: Path) -> None:
    # ObjectStoragePath.open() wraps the fsspec file to collect hook-level lineage on each read() and
    # write() call; path.fs.open(path.path, ...) gives the fsspec file itself (commit(), discard(), closed).
    path = ObjectStoragePath(f"file://{tmp_path}/x.csv")
    with path.open("wb") as wrapped, path.fs.open(str(tmp_path / "y.csv"), "wb") as raw:
        assert type(wrapped).__name__.endswith("TrackingFileWrapper")
        assert type(wrapped._obj) is type(raw)
        assert type(raw).__name__ == "LocalFileOpener"
