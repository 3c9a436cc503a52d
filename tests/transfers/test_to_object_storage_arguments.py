"""FollowAnalyticsToObjectStorageOperator's arguments: checked at parse or before any request; templates, outlets."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.transfers.followanalytics_to_object_storage import (
    FollowAnalyticsToObjectStorageOperator,
)
from tests.transfers._object_stores import (
    _fresh_object_stores,  # noqa: F401 - autouse
    _operator,
)


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
        ("s3://aws_default@lake/d.csv", "s3fs", "airflow-provider-followanalytics[amazon]"),
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
