"""The ``openlineage_run`` fixture: a real ``dag.test()`` run whose OpenLineage events are captured.

The openlineage provider decides at plugin load whether it listens, and caches its configuration,
so the run happens in a child interpreter started with the configuration in its environment: the
file transport (one JSON event per line), enabled, a test namespace; on Airflow 3 emission runs in a
thread of the task process instead of a fork. Connections set with ``monkeypatch.setenv`` reach the
child too (it inherits the environment).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.dagrun import DagRunResult, run_dag_in_child

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "followanalytics-tests"


@dataclass
class LineageRun:
    """A DAG run's result, the OpenLineage events it emitted (in order), and the raw events file."""

    result: DagRunResult
    events: list[dict[str, Any]]
    events_file: Path
    output: str = field(repr=False, default="")

    def task_events(self, task_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """The events of one task (job name ``<dag_id>.<task_id>``), optionally of one type (``COMPLETE``...)."""
        return [
            event
            for event in self.events
            if event.get("job", {}).get("name", "").endswith(f".{task_id}")
            and (event_type is None or event.get("eventType") == event_type)
        ]


def openlineage_env(events_file: Path) -> dict[str, str]:
    """The environment that makes the openlineage provider write every event to ``events_file``."""
    return {
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": NAMESPACE,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",  # Airflow 3 only; 2.10 always forks
        "AIRFLOW__OPENLINEAGE__DISABLED_FOR_OPERATORS": "",
    }


@pytest.fixture
def openlineage_run(airflow_db: str, tmp_path: Path) -> Callable[..., LineageRun]:
    """Run ``getattr(import_module(module), attribute)`` with ``dag.test()`` and capture its events.

    ``openlineage_run("tests.transfers.lineage_dag", "dag")`` returns a :class:`LineageRun`. The DAG
    module must be importable from the repository root; it runs in a child process (timeout 240 s).
    """

    def _run(module: str, attribute: str = "dag", timeout: float = 240.0) -> LineageRun:
        events_file = tmp_path / f"openlineage-{module.rsplit('.', 1)[-1]}-{attribute}.jsonl"
        result, output = run_dag_in_child(module, attribute, openlineage_env(events_file), timeout)
        text = events_file.read_text() if events_file.exists() else ""
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        return LineageRun(result=result, events=events, events_file=events_file, output=output)

    return _run
