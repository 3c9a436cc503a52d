"""Pytest fixtures for Azure Blob Storage on Azurite (the emulator runs as a child process).

* ``azurite``: one Azurite per session, on 127.0.0.1 and a port it picks (read from its output);
* ``azure_conn``: the ``wasb_default`` connection on it (extra ``connection_string``), which
  ``WasbHook()`` and ``ObjectStoragePath("abfs://wasb_default@<container>/<path>")`` both use;
* ``azure_container``: a new, empty container per test; ``azure_container_client`` to check it.

A missing Azurite fails the test with the command that installs it (``make azurite``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.azurite import Azurite, AzuriteNotInstalledError

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
