"""The provider as Airflow sees it: provider info, CLI listings, connection form and test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

import airflow_provider_followanalytics
from airflow_provider_followanalytics import get_provider_info
from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from tests.fixtures import EMAIL, PASSWORD

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _airflow_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300
    )


def test_provider_info_matches_airflow_schema() -> None:
    import airflow
    import jsonschema

    schema_path = Path(airflow.__file__).with_name("provider_info.schema.json")
    info = get_provider_info()
    jsonschema.validate(info, json.loads(schema_path.read_text()))
    # Airflow's CLI crashes for every provider if package-name differs from the distribution name.
    assert info["package-name"] == distribution("airflow-provider-followanalytics").metadata["Name"]
    assert (
        info["versions"][0]
        == airflow_provider_followanalytics.__version__
        == distribution("airflow-provider-followanalytics").version
    )


def test_every_module_named_in_provider_info_imports() -> None:
    import importlib

    info = get_provider_info()
    kinds = ("hooks", "operators", "sensors", "triggers")
    modules = [m for kind in kinds for entry in info[kind] for m in entry["python-modules"]]
    modules += [t["python-module"] for t in info["transfers"]]
    present = [m for m in modules if importlib.util.find_spec(m) is not None]
    for module in present:
        importlib.import_module(module)
    assert "airflow_provider_followanalytics.hooks.followanalytics" in present


def test_connection_form_relabels_login_as_email() -> None:
    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

    behaviour = FollowAnalyticsHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["login"] == "Email"
    assert {"schema", "port"} <= set(behaviour["hidden-fields"])
    conn_type = get_provider_info()["connection-types"][0]
    fields = {"timeout", "max_retries", "retry_delay", "allow_insecure_http"}
    assert set(conn_type["conn-fields"]) == fields
    if not AIRFLOW_V_3:  # Airflow 2 builds the form from the hook's widgets
        assert set(FollowAnalyticsHook.get_connection_form_widgets()) == fields


def test_cli_lists_provider_and_connection_type() -> None:
    providers = _airflow_cli("providers", "list", "--output", "json")
    assert providers.returncode == 0, providers.stderr[-2000:]
    assert "airflow-provider-followanalytics" in providers.stdout
    hooks = _airflow_cli("providers", "hooks", "--output", "json")
    assert hooks.returncode == 0, hooks.stderr[-2000:]
    entries = {h["connection_type"]: h for h in json.loads(hooks.stdout[hooks.stdout.index("[") :])}
    assert entries["followanalytics"]["class"].endswith("FollowAnalyticsHook")


@pytest.mark.usefixtures("airflow_db")
def test_cli_connections_test_logs_in(emulator: FollowAnalyticsEmulator) -> None:
    def conn(password: str) -> dict[str, str]:
        value = {"conn_type": "followanalytics", "login": EMAIL, "password": password, "host": emulator.url}
        return {"AIRFLOW_CONN_FA_CLI": json.dumps(value), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}

    ok = _airflow_cli("connections", "test", "fa_cli", env=conn(PASSWORD))
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "Connection success" in ok.stdout
    assert emulator.login_count == 1

    bad = _airflow_cli("connections", "test", "fa_cli", env=conn("wrong-password-77"))
    output = bad.stdout + bad.stderr
    assert "Invalid email or password" in output
    assert "wrong-password-77" not in output
    assert emulator.login_count == 1
