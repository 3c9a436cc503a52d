"""Run a DAG through a real Airflow metadata DB with ``dag.test()``, on Airflow 2.10 and 3.x.

Test code may branch on the Airflow version; the package itself does so only in ``_compat``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_followanalytics._compat import AIRFLOW_V_3


@dataclass
class DagRunResult:
    """States and XComs of a finished test run."""

    state: str
    task_states: dict[str, str | None]
    xcoms: dict[str, Any] = field(default_factory=dict)


def _register_dag_on_airflow3(dag: Any) -> None:
    # dag.test() on Airflow 3 needs the DAG serialized in the DB; a DAG built inside a test
    # is not in the dags folder, so write it the way the DAG processor would.
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
        session.flush()
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def run_dag(dag: Any, logical_date: dt.datetime | None = None, **kwargs: Any) -> DagRunResult:
    """Run ``dag`` with ``dag.test()`` and collect task states and return values."""
    if AIRFLOW_V_3:
        _register_dag_on_airflow3(dag)
        dagrun = dag.test(logical_date=logical_date, **kwargs)
    else:
        # Clearing an earlier run of the same date joins the FAB user table: load its model.
        with contextlib.suppress(ImportError):
            import airflow.providers.fab.auth_manager.models  # noqa: F401
        dag.sync_to_db()  # Airflow 2's dag.test() does not register datasets, so outlet events would drop
        dagrun = dag.test(execution_date=logical_date, **kwargs)
    return collect(dag, dagrun)


def collect(dag: Any, dagrun: Any) -> DagRunResult:
    """Read the task states and ``return_value`` XComs of a run from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    if AIRFLOW_V_3:
        from airflow.models.xcom import XComModel as XCom
    else:
        from airflow.models.xcom import XCom  # type: ignore[no-redef]

    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dagrun.run_id)
            .all()
        )
        states = {ti.task_id: (str(ti.state.value) if hasattr(ti.state, "value") else ti.state) for ti in tis}
        rows = (
            session.query(XCom)
            .filter(XCom.dag_id == dag.dag_id, XCom.run_id == dagrun.run_id, XCom.key == "return_value")
            .all()
        )
        xcoms = {row.task_id: _xcom_value(row) for row in rows}
        state = dagrun.state.value if hasattr(dagrun.state, "value") else str(dagrun.state)
    _assert_no_secret_in_xcoms(xcoms)
    return DagRunResult(state=state, task_states=states, xcoms=xcoms)


def _assert_no_secret_in_xcoms(xcoms: dict[str, Any]) -> None:
    """Only a callback URL may carry an export token; nothing may carry another secret."""
    import json

    from tests.secrets_guard import current_secrets

    for task_id, value in xcoms.items():
        is_callback_url = isinstance(value, str) and "/download_url?export_token=" in value
        text = json.dumps(value, default=str)
        for name, secret in current_secrets().items():
            if name.startswith("export token") and is_callback_url:
                continue
            assert secret not in text, f"Secrets guard: {name} in the XCom of task {task_id}"


def _xcom_value(row: Any) -> Any:
    import json

    value = row.value
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return value
    return value


def run_dag_in_child(
    module: str, attribute: str, env: dict[str, str], timeout: float = 240.0
) -> tuple[DagRunResult, str]:
    """Run the DAG ``module.attribute`` with ``dag.test()`` in a child process (``tests.lineage.run_dag``)
    with ``env`` added to this process's environment; return its result and the child's output.

    For what only a fresh process shows: Airflow reads ``[metrics]`` and OpenLineage's transport once.
    """
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    child = subprocess.run(
        [sys.executable, "-m", "tests.lineage.run_dag", module, attribute],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": str(root)},
        cwd=root,
        timeout=timeout,
    )
    output = child.stdout + child.stderr
    lines = [line for line in child.stdout.splitlines() if line.startswith("DAGRUN_RESULT ")]
    failed = f"the DAG run failed (exit {child.returncode}):\n{output[-4000:]}"
    assert child.returncode == 0, failed
    assert lines, failed
    return DagRunResult(**json.loads(lines[-1].removeprefix("DAGRUN_RESULT "))), output
