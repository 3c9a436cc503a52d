"""Airflow 2 / 3 import shims: the one place that knows which Airflow is running (Airflow 3 moved
DAG-author classes into ``airflow.sdk``); the package imports Airflow base classes and helpers from here."""

from __future__ import annotations

from typing import Any

from airflow.configuration import conf
from airflow.exceptions import AirflowException

try:
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator

    AIRFLOW_V_3 = True
except ImportError:  # Airflow 2.10 / 2.11
    from airflow.hooks.base import BaseHook  # type: ignore
    from airflow.models.baseoperator import BaseOperator  # type: ignore
    from airflow.sensors.base import BaseSensorOperator  # type: ignore

    AIRFLOW_V_3 = False

# AirflowFailException: a failure task retries cannot fix (a dead export link, bad credentials).
# Airflow 3 deprecates the airflow.exceptions path of these.
if AIRFLOW_V_3:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
else:  # Airflow 2.10 / 2.11
    from airflow.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException  # type: ignore


def mask_secret(secret: str | None) -> None:
    """Register ``secret`` with Airflow's log masker (a no-op for empty values)."""
    if not secret:
        return
    if AIRFLOW_V_3:
        from airflow.sdk.log import mask_secret as _mask
    else:
        from airflow.utils.log.secrets_masker import mask_secret as _mask  # type: ignore
    _mask(secret)


async def aget_connection(conn_id: str) -> Any:
    """Look a connection up without blocking the triggerer's event loop."""
    if AIRFLOW_V_3:
        return await BaseHook.aget_connection(conn_id)
    # Airflow 2 has no async lookup: run the sync one (DB / secrets backend) in a thread.
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


def lineage_uri_object(uri: str) -> Any:
    """Return an ``Asset`` (Airflow 3) or ``Dataset`` (Airflow 2) for an output URI."""
    if AIRFLOW_V_3:
        from airflow.sdk import Asset

        return Asset(uri)
    from airflow.datasets import Dataset

    return Dataset(uri)


def object_storage_path(destination: Any, conn_id: str | None = None) -> Any:
    """An ``ObjectStoragePath`` for a URL (or another path), imported on use: fsspec is costly at parse
    time. ``conn_id`` is the connection to use when the URL names none (``s3://conn@bucket/key``)."""
    if AIRFLOW_V_3:
        from airflow.sdk import ObjectStoragePath
    else:
        from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]
    if conn_id is None:  # Airflow 2.10 takes an explicit conn_id=None over the URL's own
        return destination if isinstance(destination, ObjectStoragePath) else ObjectStoragePath(destination)
    return ObjectStoragePath(destination, conn_id=conn_id)


__all__ = [
    "AIRFLOW_V_3",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "aget_connection",
    "conf",
    "lineage_uri_object",
    "mask_secret",
    "object_storage_path",
]
