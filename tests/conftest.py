"""Shared fixtures: an isolated Airflow home, the emulator, connections, and DAG runs.

The environment variables below are set before anything imports Airflow, so every test
session gets its own SQLite metadata DB and dags folder under a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="fa-airflow-home-"))
(_HOME / "dags").mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_HOME / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"airflow\..*|airflow_provider_followanalytics\..*",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-0123456789abcdef",
        "AIRFLOW__API__SECRET_KEY": "test-only-secret-key",
        "NO_PROXY": "*",
        # gcsfs 2026.x otherwise asks GCS's gRPC control plane for each bucket's layout, which the
        # GCS emulator does not serve: every gs:// ObjectStoragePath call would hang for 60 s. Read
        # when gcsfs is imported.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }
)
os.environ.pop("AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT", None)

pytest_plugins = ["tests.fixtures", "tests.storage_fixtures", "tests.lineage.fixtures", "tests.secrets_guard"]
