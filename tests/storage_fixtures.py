"""Pytest fixtures for Azure Blob Storage on Azurite and for ``ObjectStoragePath`` on every store.

* ``azurite``: one Azurite per session, on 127.0.0.1 and a port it picks (read from its output);
* ``azure_conn``: the ``wasb_default`` connection on it (extra ``connection_string``), which
  ``WasbHook()`` and ``ObjectStoragePath("abfs://wasb_default@<container>/<path>")`` both use;
* ``azure_container``: a new, empty container per test; ``azure_container_client`` to check it;
* ``object_store_cache``: Airflow's per-process cache of ``ObjectStoragePath`` filesystems, empty;
* ``gcs_object_storage``: ``gs://google_cloud_default@<bucket>/...`` reaching the GCS emulator on
  both Airflow versions.

A missing Azurite fails the test with the command that installs it (``make azurite``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from standins.azurite import Azurite, AzuriteNotInstalledError

AZURE_CONN_ID = "wasb_default"  # WasbHook's default connection id


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service for the session (in memory); stopped by its pid at the end."""
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    try:
        server.start()
    except AzuriteNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azure_conn(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> str:
    """``wasb_default`` on Azurite (``AIRFLOW_CONN_WASB_DEFAULT``); returns the connection id."""
    import json

    conn = {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{AZURE_CONN_ID.upper()}", json.dumps(conn))
    return AZURE_CONN_ID


@pytest.fixture
def azure_service_client(azurite: Azurite) -> Any:
    """A ``BlobServiceClient`` on Azurite, for arranging and checking containers."""
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string) as client:
        yield client


@pytest.fixture
def azure_container(azure_conn: str, azure_service_client: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty container named after the test (deleted afterwards); yields its name."""
    # Container names: 3-63 characters, lowercase letters, digits and single hyphens.
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:8]}".lstrip("-")
    azure_service_client.create_container(name)
    try:
        yield name
    finally:
        azure_service_client.delete_container(name)


@pytest.fixture
def azure_container_client(azure_service_client: Any, azure_container: str) -> Any:
    """A ``ContainerClient`` on the test's container (``list_blob_names()``, ``download_blob()``)."""
    return azure_service_client.get_container_client(azure_container)


@pytest.fixture
def object_store_cache() -> Iterator[dict[str, Any]]:
    """Airflow's cache of ``ObjectStoragePath`` filesystems, emptied before and after the test.

    ``attach()`` keeps one filesystem per ``"<scheme>-<conn_id>"`` for the life of the process,
    built from the connection as it was then: without this, a test reuses the filesystem (and the
    endpoint, credentials and sessions) of an earlier test with the same connection id.
    """
    if AIRFLOW_V_3:
        from airflow.sdk.io.store import _STORE_CACHE
    else:
        from airflow.io.store import _STORE_CACHE  # type: ignore[no-redef]
    _STORE_CACHE.clear()
    yield _STORE_CACHE
    _STORE_CACHE.clear()


@pytest.fixture
def gcs_object_storage(gcp_conn: str, object_store_cache: dict[str, Any]) -> str:
    """Make ``gs://google_cloud_default@<bucket>/<key>`` paths reach the GCS emulator; returns the conn id.

    On Airflow 3 the google provider's filesystem takes the connection's anonymous credentials as
    they are. The 2.10 environment's google provider (19.0.0) asks them for an access token first,
    which anonymous credentials refuse ("Anonymous credentials cannot be refreshed"): there, an
    anonymous ``GCSFileSystem`` is attached under the connection's store alias instead.
    """
    conn_id = "google_cloud_default"
    if not AIRFLOW_V_3:
        from airflow.io.store import attach
        from gcsfs import GCSFileSystem

        attach("gs", conn_id=conn_id, fs=GCSFileSystem(project="test-project", token="anon"))
    return conn_id
