"""The Azurite fixtures: a real emulator on a port it picked, reached by WasbHook, stopped by pid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from standins import azurite as azurite_module
from standins.azurite import Azurite, AzuriteNotInstalledError

pytestmark = pytest.mark.version_independent  # CI runs it on Airflow 3.3 only


def test_azurite_listens_on_the_port_it_printed(azurite: Azurite) -> None:
    import socket

    assert azurite.url == f"http://127.0.0.1:{azurite.port}"
    assert azurite.port != 10000  # Azurite's default: the port really came from --blobPort 0
    with socket.create_connection(("127.0.0.1", azurite.port), timeout=5):
        pass


def test_wasb_hook_round_trip_through_the_connection(azure_conn: str, azure_container: str) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    hook = WasbHook(wasb_conn_id=azure_conn)
    hook.load_string("a,b\n1,2\n", azure_container, "exports/x.csv")
    assert hook.read_file(azure_container, "exports/x.csv") == "a,b\n1,2\n"
    assert hook.check_for_blob(azure_container, "exports/x.csv")


def test_each_test_gets_a_new_empty_container(azure_container_client: Any, azure_container: str) -> None:
    assert azure_container_client.container_name == azure_container
    assert list(azure_container_client.list_blob_names()) == []


def test_a_missing_azurite_names_the_make_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(azurite_module, "AZURITE_BLOB", tmp_path / "no-azurite-blob")
    with pytest.raises(AzuriteNotInstalledError, match=r"run `make azurite`"):
        Azurite(tmp_path).start()


def test_stop_ends_the_process_it_started(tmp_path: Path) -> None:
    server = Azurite(tmp_path).start()
    pid = server.pid
    os.kill(pid, 0)  # alive
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent
