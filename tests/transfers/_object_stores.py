"""The stores the object-storage transfer tests write to (each read back with its own client), and the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
    FollowAnalyticsToObjectStorageOperator,
)
from tests.transfers.conftest import MiB

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

    def content_type(self, name: str) -> str | None:
        """The Content-Type the store keeps for the object (None: the store keeps none)."""
        return None

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

    def content_type(self, name: str) -> str | None:
        return str(self.bucket.get_blob(name).content_type)

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

    def content_type(self, name: str) -> str | None:
        return str(self.client.head_object(Bucket=self.bucket, Key=name)["ContentType"])

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

    def content_type(self, name: str) -> str | None:
        return str(self.container.get_blob_client(name).get_blob_properties().content_settings.content_type)

    def leftovers(self) -> list[str]:
        return sorted(self.container.list_blob_names())


STORES = ["file", "gs", "s3", "abfs"]


def _display(store: Store, name: str) -> str:
    url = store.url(name)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


@pytest.fixture(autouse=True)
def _fresh_object_stores(object_store_cache: dict[str, Any]) -> None:
    """Airflow caches one filesystem per protocol and connection id: connections change between tests."""


def _operator(destination: Any, callback_url: str, **kwargs: Any) -> FollowAnalyticsToObjectStorageOperator:
    kwargs.setdefault("block_size", BLOCK)
    return FollowAnalyticsToObjectStorageOperator(
        task_id="to_store", callback_url=callback_url, destination=destination, **kwargs
    )
