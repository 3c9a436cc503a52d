"""Pytest fixtures for real components: emulator, Airflow DB, moto S3, GCS emulator."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from standins import servers as standin_servers

EMAIL = "data-team@example.com"
PASSWORD = "pw-Xq9-very-secret-4242"


def wait_for(condition: Any, timeout: float = 10.0, message: str = "condition") -> None:
    """Poll ``condition()`` until it is truthy; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.01)


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def task_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` that also receives operator logs on Airflow 3.

    Airflow 3's operators log through structlog, which prints without touching the standard
    ``logging`` module; for the test, structlog is pointed at ``logging`` so ``caplog`` sees the
    records (the operator's own code path is unchanged). Airflow 2 logs to ``logging`` already.
    """
    caplog.set_level(logging.INFO)
    if not AIRFLOW_V_3:
        yield caplog
        return
    import structlog

    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.stdlib.PositionalArgumentsFormatter(), structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        yield caplog
    finally:
        structlog.configure(**saved)


@pytest.fixture
def emulator() -> Iterator[FollowAnalyticsEmulator]:
    """A fresh FollowAnalytics emulator on 127.0.0.1, port 0."""
    emu = FollowAnalyticsEmulator(email=EMAIL, password=PASSWORD, export_size=64 * 1024)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def fa_conn(monkeypatch: pytest.MonkeyPatch, emulator: FollowAnalyticsEmulator) -> dict[str, Any]:
    """``followanalytics_default`` pointing at the emulator, with fast retries for tests."""
    conn = {
        "conn_type": "followanalytics",
        "login": EMAIL,
        "password": PASSWORD,
        "host": emulator.url,
        "extra": {"timeout": 5, "max_retries": 3, "retry_delay": 0.01},
    }
    _set_conn(monkeypatch, "followanalytics_default", conn)
    return conn


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Define any Airflow connection through its environment variable for one test."""

    def _set(conn_id: str, **conn: Any) -> None:
        _set_conn(monkeypatch, conn_id, conn)

    return _set


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate the session's SQLite metadata DB once (``airflow db migrate``)."""
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    result = subprocess.run(
        [airflow, "db", "migrate"], capture_output=True, text=True, env=os.environ.copy(), timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (port 0); yields its endpoint URL."""
    with standin_servers.moto_server() as url:
        yield url


@pytest.fixture
def aws_conn(monkeypatch: pytest.MonkeyPatch, s3_server: str) -> str:
    """``aws_default`` pointing at moto's server; returns the endpoint URL."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, {"AWS_DEFAULT_REGION": "us-east-1"}.get(key, "testing"))
    _set_conn(
        monkeypatch,
        "aws_default",
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
        },
    )
    return s3_server


@pytest.fixture
def s3_client(aws_conn: str) -> Any:
    """A boto3 S3 client on moto's server, for arranging and checking buckets."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=aws_conn,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def s3_bucket(s3_client: Any, request: pytest.FixtureRequest) -> str:
    """A new, empty bucket named after the test."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """The GCS emulator (gcp-storage-emulator) on 127.0.0.1; yields its URL."""
    with standin_servers.gcs_server() as url:
        yield url


@pytest.fixture
def gcp_conn(monkeypatch: pytest.MonkeyPatch, gcs_server: str) -> str:
    """``google_cloud_default`` as an anonymous connection to the GCS emulator."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    _set_conn(
        monkeypatch,
        "google_cloud_default",
        {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "test-project"}},
    )
    return gcs_server


@pytest.fixture
def gcs_bucket(gcp_conn: str, request: pytest.FixtureRequest) -> str:
    """A new bucket in the GCS emulator."""
    import re
    import uuid

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    client = storage.Client(project="test-project", credentials=AnonymousCredentials())
    client.create_bucket(bucket)
    return bucket
