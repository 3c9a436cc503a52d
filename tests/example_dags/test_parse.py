"""The example DAG files parse cleanly, follow the house rules, and stay cheap to parse."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.operators._fair_use import sub_daily_schedule
from tests.example_dags.conftest import EXAMPLE_DAGS

DAILY, WEEKLY = "0 0 * * *", "0 0 * * 0"
#: dag_id -> (file name, cron expression of its CronDataIntervalTimetable)
EXPECTED = {
    "followanalytics_segment_devices_to_s3": ("followanalytics_segment_devices_to_s3.py", DAILY),
    "followanalytics_segment_devices_to_lake": ("followanalytics_segment_devices_to_lake.py", DAILY),
    "followanalytics_app_events_to_gcs": ("followanalytics_app_events_to_gcs.py", DAILY),
    "followanalytics_app_metrics_to_s3": ("followanalytics_app_metrics_to_s3.py", DAILY),
    "followanalytics_event_insights_to_s3": ("followanalytics_event_insights_to_s3.py", WEEKLY),
    "followanalytics_app_devices_full_and_delta_to_s3": ("followanalytics_app_devices_full_and_delta_to_s3.py", DAILY),
    "followanalytics_performance_report_by_email": ("followanalytics_performance_report_by_email.py", WEEKLY),
    "followanalytics_app_devices_to_azure": ("followanalytics_app_devices_to_azure.py", DAILY),
}
#: Libraries that cost parse time (see DESIGN.md); a DAG file must not load them.
HEAVY = ("requests", "aiohttp", "boto3", "botocore", "google.cloud")


def test_every_example_file_is_expected_and_parses_without_errors(example_dagbag: Any) -> None:
    assert example_dagbag.import_errors == {}
    files = sorted(path.name for path in EXAMPLE_DAGS.glob("*.py"))
    assert files == sorted(name for name, _ in EXPECTED.values())
    assert sorted(example_dagbag.dags) == sorted(EXPECTED)
    for dag_id, dag in example_dagbag.dags.items():
        assert os.path.basename(dag.fileloc) == EXPECTED[dag_id][0]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_example_dag_follows_the_house_rules(example_dag: Any, dag_id: str) -> None:
    dag = example_dag(dag_id)
    assert "followanalytics" in dag.tags
    assert "example" in dag.tags
    assert dag.doc_md, "the module docstring is the DAG's doc_md"
    assert dag.doc_md.lstrip().startswith("###")
    assert dag.description
    assert dag.catchup is False
    assert dag.start_date is not None
    assert dag.start_date.year == 2024
    assert dag.start_date.utcoffset() == dt.timedelta(0)

    # A data-interval timetable in UTC (Airflow 3's plain cron strings have an empty interval,
    # which the period exports refuse), never more often than daily (FollowAnalytics' fair use).
    timetable = dag.timetable
    assert type(timetable).__name__ == "CronDataIntervalTimetable"
    expression = getattr(timetable, "expression", None) or timetable._expression
    assert expression == EXPECTED[dag_id][1]
    timezone = getattr(timetable, "_timezone", None) or timetable.timezone
    assert str(getattr(timezone, "name", timezone)) == "UTC"
    assert sub_daily_schedule(timetable) is None

    # Connections and destinations come from params with defaults, never from literals in tasks.
    assert dag.params, "identifiers, buckets and connection ids are DAG params"
    params = dag.params.dump() if hasattr(dag.params, "dump") else dict(dag.params)
    assert all(value not in (None, "") for value in params.values()), params


# Like Airflow's DAG processor: import Airflow once, then parse each file in a forked child, so
# that every file starts from the same modules and what it loads is measured on its own.
_IMPORT_EACH_FILE = """
import importlib.util, json, os, sys
{airflow_import}
results = {{}}
for path in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        before = set(sys.modules)
        try:
            spec = importlib.util.spec_from_file_location("example_dag_under_test", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            report = {{"dag_id": module.dag.dag_id, "new_modules": sorted(set(sys.modules) - before)}}
        except BaseException as exc:
            report = {{"error": f"{{type(exc).__name__}}: {{exc}}"}}
        with os.fdopen(write, "w") as out:
            json.dump(report, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as inp:
        results[os.path.basename(path)] = json.load(inp)
    os.waitpid(pid, 0)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def parse_reports() -> dict[str, Any]:
    """For each example file: its dag_id and the modules that importing it loaded."""
    # What the DAG processor has loaded before it parses a file: airflow.sdk on Airflow 3; on
    # Airflow 2 the models and base classes (the scheduler's process), where `import airflow`
    # already loads requests, so that there only the other libraries can be caught.
    airflow_import = (
        "import airflow.sdk"
        if AIRFLOW_V_3
        else "import airflow.models.dagbag, airflow.models.baseoperator, airflow.sensors.base, airflow.decorators"
    )
    files = [str(EXAMPLE_DAGS / name) for name, _ in EXPECTED.values()]
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FILE.format(airflow_import=airflow_import), *files],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("file_name", sorted(name for name, _ in EXPECTED.values()))
def test_parsing_an_example_loads_no_heavy_library(parse_reports: dict[str, Any], file_name: str) -> None:
    report = parse_reports[file_name]
    assert "error" not in report, report
    assert report["dag_id"] in EXPECTED
    loaded = [name for name in report["new_modules"] if any(name == h or name.startswith(f"{h}.") for h in HEAVY)]
    assert loaded == [], f"parsing {file_name} imported {loaded}"
    # The measure itself can fail: the provider's modules were loaded by the file, not before it.
    assert "airflow_provider_followanalytics.operators.exports" in report["new_modules"]
