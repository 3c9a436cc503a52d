"""The dag.test() harness itself works on this Airflow version (guards the other DAG tests)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.dagrun import run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_inline_dag_runs_and_returns_xcom() -> None:
    from airflow_provider_followanalytics._compat import AIRFLOW_V_3

    if AIRFLOW_V_3:
        from airflow.sdk import DAG, task
    else:
        from airflow import DAG
        from airflow.decorators import task

    with DAG("smoke_inline", schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)) as dag:

        @task
        def answer() -> int:
            return 42

        @task
        def double(x: int) -> int:
            return 2 * x

        double(answer())

    result = run_dag(dag)
    assert result.state == "success"
    assert result.task_states == {"answer": "success", "double": "success"}
    assert result.xcoms["double"] == 84
