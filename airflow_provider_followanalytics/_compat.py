"""Airflow 2.10 to 3.3 import shims: the one place that knows where Airflow keeps what.

Each shim imports the feature it needs from where the newer Airflow keeps it and falls back to the
older home, and says which minors take which branch. ``AIRFLOW_VERSION`` is the test where no import
can tell (``airflow.sdk`` exists from 3.0 but gained names over 3.0 to 3.2, so its presence alone
says nothing). Facts checked on 2.10.5, 2.11.2, 3.0.6, 3.1.8, 3.2.2 and 3.3.2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import airflow
from airflow.configuration import conf
from airflow.exceptions import AirflowException
from packaging.version import Version

if TYPE_CHECKING:
    from collections.abc import Callable

#: The running Airflow's release, without pre/dev/local parts (``3.1.8rc1`` -> ``3.1.8``).
AIRFLOW_VERSION = Version(Version(airflow.__version__).base_version)
AIRFLOW_V_3 = AIRFLOW_VERSION.major >= 3

# BaseHook: airflow.sdk from 3.1; 2.10, 2.11 and 3.0 keep it in airflow.hooks.base.
try:
    from airflow.sdk import BaseHook
except ImportError:
    from airflow.hooks.base import BaseHook  # type: ignore[attr-defined,no-redef]

# BaseOperator, BaseSensorOperator, BaseOperatorLink: airflow.sdk from 3.0; 2.10 and 2.11 keep them in
# airflow.models / sensors.
try:
    from airflow.sdk import BaseOperator, BaseOperatorLink, BaseSensorOperator
except ImportError:
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef]
    from airflow.models.baseoperatorlink import BaseOperatorLink  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef]

# AirflowFailException (a failure retries cannot fix), AirflowSensorTimeout, AirflowSkipException:
# airflow.sdk.exceptions from 3.2 (where airflow.exceptions re-exports them, deprecated); 2.10 to 3.1
# raise and catch the airflow.exceptions classes (the 3.0 / 3.1 task runners import them from there).
try:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
except ImportError:
    from airflow.exceptions import (  # type: ignore[assignment,no-redef]
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )


def secret_masker() -> Callable[[str], Any]:
    """Airflow's ``mask_secret``: ``airflow.sdk.log`` from 3.0, ``airflow.utils.log.secrets_masker`` on 2.x.

    Call it before reading a secret: if it fails, no frame of the traceback holds one yet.

    :raises ImportError: naming the Airflow version, when that version's masker does not import;
        never a silent fall-through to another generation's path.
    """
    module = "airflow.sdk.log" if AIRFLOW_V_3 else "airflow.utils.log.secrets_masker"
    try:
        if AIRFLOW_V_3:
            from airflow.sdk.log import mask_secret
        else:
            from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef]
    except ImportError as exc:
        raise ImportError(
            f"Airflow {airflow.__version__}: the secret masker {module}.mask_secret does not import ({exc}); "
            "the FollowAnalytics provider will not handle credentials it cannot mask in logs."
        ) from None
    return mask_secret  # type: ignore[no-any-return]


def mask_secret(secret: str | None) -> None:
    """Register ``secret`` with Airflow's log masker (a no-op for empty values)."""
    if secret:
        secret_masker()(secret)


async def aget_connection(conn_id: str) -> Any:
    """Look a connection up without blocking the triggerer's event loop."""
    # BaseHook.aget_connection: 3.1+. 2.10, 2.11 and 3.0 have only the sync lookup (DB, secrets
    # backend or, on 3.0, the supervisor): run it in a thread.
    lookup = getattr(BaseHook, "aget_connection", None)
    if lookup is not None:
        return await lookup(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


def lineage_uri_object(uri: str) -> Any:
    """An ``Asset`` (3.0+: ``airflow.sdk``) or, on 2.10 / 2.11, a ``Dataset`` for an output URI."""
    try:
        from airflow.sdk import Asset
    except ImportError:
        from airflow.datasets import Dataset

        return Dataset(uri)
    return Asset(uri)


def stats() -> Any:
    """Airflow's ``Stats``, the metrics logger its ``[metrics]`` section configures (imported on use).

    ``airflow.sdk.observability.stats`` from 3.2 (the Task SDK's, which the task runner and, through
    ``airflow.sdk.serde``, the triggerer initialize from ``[metrics]``); 2.10, 2.11, 3.0 and 3.1 keep it
    in ``airflow.stats``, configured on first use (3.2 and 3.3 still answer there, deprecated). Every
    one takes ``Stats.incr(name, count, tags={...})`` and ``Stats.timing(name, timedelta, tags={...})``.
    """
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:
        from airflow.stats import Stats  # type: ignore[no-redef]
    return Stats


def object_storage_path(destination: Any, conn_id: str | None = None) -> Any:
    """An ``ObjectStoragePath`` for a URL (or another path), imported on use: fsspec is costly at parse
    time. ``conn_id`` is the connection to use when the URL names none (``s3://conn@bucket/key``)."""
    # airflow.sdk.ObjectStoragePath: 3.0+; 2.10 and 2.11 keep it in airflow.io.path.
    try:
        from airflow.sdk import ObjectStoragePath
    except ImportError:
        from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]
    if conn_id is None:  # Airflow 2.10 takes an explicit conn_id=None over the URL's own
        return destination if isinstance(destination, ObjectStoragePath) else ObjectStoragePath(destination)
    return ObjectStoragePath(destination, conn_id=conn_id)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "aget_connection",
    "conf",
    "lineage_uri_object",
    "mask_secret",
    "object_storage_path",
    "secret_masker",
    "stats",
    "xcom_class",
]


def xcom_class() -> Any:
    """The XCom class a link is read with: ``airflow.sdk.execution_time.xcom`` (3.0+, through the task
    supervisor), else ``airflow.models.xcom`` (2.10 and 2.11: the metadata DB, in the webserver)."""
    try:
        from airflow.sdk.execution_time.xcom import XCom
    except ImportError:
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    return XCom
