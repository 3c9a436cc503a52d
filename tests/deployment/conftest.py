"""One real Airflow deployment per test module (components start once: they cost seconds each)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment._deployment import (
    Deployment,
    NetworkStandIns,
    Processes,
    StandIns,
    start_network_stand_ins,
    start_stand_ins,
)
from tests.fixtures import EMAIL, PASSWORD

DAGS = Path(__file__).with_name("dags")
BUCKET = "deployment-lake"
#: Download speed through the proxy: a 96 MiB export takes about 6 s, long enough to kill its task.
BYTES_PER_SECOND = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deployment") / "captured"


@pytest.fixture(scope="module")
def processes(captured: Path) -> Iterator[Processes]:
    started = Processes(captured)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture(scope="module")
def stand_ins(processes: Processes) -> StandIns:
    servers = start_stand_ins(processes, EMAIL, PASSWORD, BYTES_PER_SECOND)
    servers.s3().create_bucket(Bucket=BUCKET)
    return servers


@pytest.fixture(scope="module")
def network(processes: Processes) -> NetworkStandIns:
    return start_network_stand_ins(processes, EMAIL, PASSWORD)


@pytest.fixture(scope="module")
def deployment(captured: Path, processes: Processes, stand_ins: StandIns, network: NetworkStandIns) -> Deployment:
    connections = {
        "AIRFLOW_CONN_FOLLOWANALYTICS_NETWORK": network.connection(EMAIL, PASSWORD),
        "AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT": json.dumps(
            {"conn_type": "followanalytics", "login": EMAIL, "password": PASSWORD, "host": stand_ins.api_url}
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "deploy",
                "password": "deploy-secret",
                "extra": {"endpoint_url": stand_ins.s3_url, "region_name": "us-east-1"},
            }
        ),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    airflow = Deployment(captured.parent / "airflow-home", processes, connections)
    airflow.start(sorted(DAGS.glob("*.py")))
    return airflow
