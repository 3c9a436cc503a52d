"""Fixtures of the example DAG tests: the example DAGs, parsed with a real DagBag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def parse_example_dags(path: Path = EXAMPLE_DAGS) -> Any:
    """A DagBag of the example_dags folder (or of one file in it), as the DAG processor fills it."""
    if AIRFLOW_V_3:  # Airflow 3 has no bundled examples to leave out
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(path))
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(path), include_examples=False)


@pytest.fixture(scope="session")
def example_dagbag() -> Any:
    return parse_example_dags()


@pytest.fixture
def example_dag():  # type: ignore[no-untyped-def]
    """Parse ``example_dags/<dag_id>.py`` afresh and return its DAG.

    A new DAG object for every run, as each Airflow process parses the file anew: within one
    process, Airflow 3.3's task runner writes a run's conf into the tasks' Param objects, so a
    second dag.test() of the same DAG object would see the first run's conf as defaults.
    """

    def _get(dag_id: str) -> Any:
        bag = parse_example_dags(EXAMPLE_DAGS / f"{dag_id}.py")
        assert not bag.import_errors, bag.import_errors
        assert list(bag.dags) == [dag_id]
        return bag.dags[dag_id]

    return _get
