"""The provider as Airflow sees it: provider info, both spellings of the connection form, the declared
matrix (the CLI and the form as Airflow builds them: .ci/install_check.py)."""

from __future__ import annotations

import json
from importlib.metadata import distribution
from pathlib import Path

import airflow_provider_followanalytics
from airflow_provider_followanalytics import get_provider_info


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


# The form as each Airflow builds it (ProvidersManager, the API server's hook_meta), `airflow providers
# list` / `hooks` and `airflow connections test` are checked against the built wheel, on every minor, by
# .ci/install_check.py (make install-check).


def test_the_declared_airflow_matrix_is_the_tested_one() -> None:
    # The docs' table of minors must be exactly the locks CI installs (.ci/install_check.py), each at its pin.
    import re

    root = Path(__file__).resolve().parent.parent
    locks = {}
    for lock in (root / "requirements").glob("airflow-*.lock"):
        pinned = re.search(r"^apache-airflow==(\S+)$", lock.read_text(), re.MULTILINE)
        assert pinned, lock
        locks[lock.stem.removeprefix("airflow-")] = pinned.group(1)
    readme = (root / "docs" / "versions.md").read_text()  # the page of the tested minors
    table = dict(re.findall(r"^\| (\d+\.\d+) \| (\d+\.\d+\.\d+) \| ", readme, re.MULTILINE))
    assert table == locks
    assert set(locks) == {"2.10", "2.11", "3.0", "3.1", "3.2", "3.3"}
    releases = ", ".join(sorted(locks.values(), key=lambda v: tuple(map(int, v.split(".")))))
    assert f"| Apache Airflow | {releases} | `>=2.10,<4` |" in readme
    assert 'apache-airflow>=2.10.0,<4"' in (root / "pyproject.toml").read_text()


def test_the_version_and_the_documentation_address_are_spelled_once_each_way() -> None:
    import tomllib

    from airflow_provider_followanalytics import DOCUMENTATION_URL, __version__, get_provider_info

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__  # main carries a development version until a release
    assert project["urls"]["Documentation"] == DOCUMENTATION_URL == get_provider_info()["documentation-url"]
