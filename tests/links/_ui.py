"""Read a task instance's extra links the way each Airflow version's UI does, after a ``dag.test()`` run."""

from __future__ import annotations

from typing import Any

from airflow_provider_followanalytics._compat import AIRFLOW_V_3


def ui_links(dag: Any, task_id: str) -> dict[str, str | None]:
    """``{link name: URL or None}`` of ``task_id`` in the DAG's (one) run, as the UI gets them.

    Airflow 3: the API server's route ``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links``
    (its function, called with the DB session and DAG bag it would get, without HTTP and auth): the serialized
    DAG from the metadata DB, whose links are XCom keys. Airflow 2.10: the webserver's ``extra_links`` view,
    ``task.get_extra_links(ti, name)`` on the task of the DAG deserialized from the DB (links rebuilt from
    the classes the provider registers).
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run_id = session.query(DagRun.run_id).filter(DagRun.dag_id == dag.dag_id).one()[0]
    if AIRFLOW_V_3:
        from airflow.api_fastapi.core_api.routes.public.extra_links import get_extra_links
        from airflow.models.dagbag import DBDagBag

        with create_session() as session:
            response = get_extra_links(
                dag_id=dag.dag_id, dag_run_id=run_id, task_id=task_id, session=session, dag_bag=DBDagBag()
            )
        return dict(response.extra_links)

    from airflow.models.dagbag import DagBag
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance

    SerializedDagModel.write_dag(dag)  # what the DAG processor stores, which the webserver reads
    task = DagBag(read_dags_from_db=True).get_dag(dag.dag_id).get_task(task_id)
    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run_id, task_id=task_id).one()
        return {name: task.get_extra_links(ti, name) or None for name in task.extra_links}
