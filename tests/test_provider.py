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
    modules += [c["hook-class-name"].rpartition(".")[0] for c in info["connection-types"]]
    for module in modules:  # a typo or a missing optional dependency fails here, by name
        importlib.import_module(module)
    for conn_type in info["connection-types"]:
        module, _, name = conn_type["hook-class-name"].rpartition(".")
        assert getattr(importlib.import_module(module), name).conn_type == conn_type["connection-type"]
    # and the other way round: every public module of those packages is declared
    package = Path(importlib.import_module("airflow_provider_followanalytics").__file__ or "").parent
    public = {
        f"airflow_provider_followanalytics.{kind}.{path.stem}"
        for kind in (*kinds, "transfers")
        for path in (package / kind).glob("*.py")
        if not path.name.startswith("_")
    }
    assert public - set(modules) == set()


def _airflow_schema(name: str) -> dict[str, object]:
    import airflow

    return json.loads(Path(airflow.__file__).with_name(name).read_text())


def test_both_spellings_of_the_connection_form_match_airflow_schemas() -> None:
    # Provider info (read by Airflow 3) spells the keys hidden-fields; the hook's answer (read
    # by Airflow 2) is validated against customized_form_field_behaviours.schema.json, which
    # wants hidden_fields: Airflow 2 drops a behaviour that fails it, with only a warning.
    import jsonschema

    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

    jsonschema.validate(get_provider_info(), _airflow_schema("provider_info.schema.json"))
    jsonschema.validate(
        FollowAnalyticsHook.get_ui_field_behaviour(), _airflow_schema("customized_form_field_behaviours.schema.json")
    )
    behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert FollowAnalyticsHook.get_ui_field_behaviour() == {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }


def test_providers_manager_builds_the_connection_form() -> None:
    # The form as the running Airflow builds it (webserver on 2.x, API server on 3.x).
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["followanalytics"]
    assert behaviour["relabeling"] == {"login": "Email", "host": "API base URL"}
    assert set(behaviour["hidden_fields"]) == {"schema", "port", "extra"}
    assert behaviour["placeholders"]["login"] == "you@example.com"
    widgets = {name for name in manager.connection_form_widgets if name.startswith("extra__followanalytics__")}
    assert widgets == {
        f"extra__followanalytics__{f}" for f in ("timeout", "max_retries", "retry_delay", "allow_insecure_http")
    }


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


def test_the_declared_airflow_matrix_is_the_tested_one() -> None:
    # README's table of minors must be exactly the locks CI installs (.ci/install_check.py), each at its pin.
    import re

    root = Path(__file__).resolve().parent.parent
    locks = {}
    for lock in (root / "requirements").glob("airflow-*.lock"):
        pinned = re.search(r"^apache-airflow==(\S+)$", lock.read_text(), re.MULTILINE)
        assert pinned, lock
        locks[lock.stem.removeprefix("airflow-")] = pinned.group(1)
    readme = (root / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+\.\d+) \| (\d+\.\d+\.\d+) \| ", readme, re.MULTILINE))
    assert table == locks
    assert set(locks) == {"2.10", "2.11", "3.0", "3.1", "3.2", "3.3"}
    releases = ", ".join(sorted(locks.values(), key=lambda v: tuple(map(int, v.split(".")))))
    assert f"| Apache Airflow | {releases} | `>=2.10,<4` |" in readme
    assert 'apache-airflow>=2.10.0,<4"' in (root / "pyproject.toml").read_text()
