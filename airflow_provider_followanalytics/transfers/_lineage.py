"""OpenLineage datasets of a transfer: the FollowAnalytics export in, the object written out.

Nothing here imports the openlineage provider at module import (DAG files stay cheap to parse);
:func:`lineage_of` imports it when called, from a transfer's ``get_openlineage_facets_on_complete``,
and returns None when it is not installed. Names follow the OpenLineage dataset naming spec (the
same strings as ``openlineage.client.naming.dataset`` and the amazon / google / common-io providers'
asset converters): ``s3://bucket`` + key, ``gs://bucket`` + object, ``file`` + absolute path,
``abfss://container@account.dfs.core.windows.net`` (``wasbs://`` likewise) + path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

_DEFAULT_PORTS = {"http": 80, "https": 443}
_S3_SCHEMES = {"s3", "s3a", "s3n"}
_GCS_SCHEMES = {"gs", "gcs"}
_AZURE_SCHEMES = {"abfs": "abfss", "abfss": "abfss", "wasb": "wasbs", "wasbs": "wasbs"}
_AZURE_DOMAIN = "dfs.core.windows.net"  # what the naming spec puts after the account, for both


def export_dataset(callback_url: str) -> tuple[str, str]:
    """Namespace and name of the export a callback URL downloads.

    The namespace is the API's ``scheme://host[:port]`` (default ports dropped), the name the URL's
    path. The query (the export token) and any ``user:password@`` are never part of either.

    :param callback_url: the callback URL the export API returned.
    """
    parts = urlsplit(callback_url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}", parts.path or "/"


def object_dataset(destination_uri: str, account_name: str | None = None) -> tuple[str, str]:
    """Namespace and name of the object at ``destination_uri``.

    Accepts Airflow's ``scheme://conn_id@bucket/key`` form (the connection id is dropped) and the
    stores' own URLs. On Azure, Airflow's ``abfs://conn_id@container/path`` does not carry the storage
    account: pass it as ``account_name`` (without it the namespace is ``abfss://container``); Azure's
    own ``abfss://container@account.dfs.core.windows.net/path`` carries it.

    :param destination_uri: where the transfer wrote, e.g. ``str(ObjectStoragePath)``.
    :param account_name: the Azure storage account, for Airflow's ``abfs://`` / ``wasb://`` form.
    """
    parts = urlsplit(destination_uri)
    scheme = parts.scheme.lower() or "file"
    userinfo, _, host = parts.netloc.rpartition("@")
    key = parts.path.lstrip("/") or "/"
    if scheme in ("file", "local"):
        return (f"file://{host}" if host else "file"), parts.path or "/"
    if scheme in _S3_SCHEMES:
        return f"s3://{host}", key
    if scheme in _GCS_SCHEMES:
        return f"gs://{host}", key
    if scheme in _AZURE_SCHEMES:
        account: str | None = account_name
        container = host
        if "." in host:  # Azure's form: container@account.<endpoint> (container names have no dots)
            container, account = userinfo, host.split(".", 1)[0]
        # else Airflow's form, conn_id@container: the account comes from the caller
        location = f"{container}@{account}.{_AZURE_DOMAIN}" if account else container
        return f"{_AZURE_SCHEMES[scheme]}://{location}", key
    return f"{scheme}://{host}", key  # any other fsspec store: its host, never its userinfo


def _azure_account_of(destination: Any) -> str | None:
    """The storage account of an Azure ``ObjectStoragePath``'s filesystem (adlfs), if it has one."""
    if urlsplit(str(destination)).scheme.lower() not in _AZURE_SCHEMES:
        return None
    try:
        fs = destination.fs
        # adlfs sets account_name when given one; from a connection string only its client knows it.
        return getattr(fs, "account_name", None) or getattr(getattr(fs, "service_client", None), "account_name", None)
    except Exception:  # lineage must never fail a transfer: a path whose fs cannot be built has no account
        return None


def lineage_of(callback_url: str, destination: Any = None, account_name: str | None = None) -> OperatorLineage | None:
    """The ``OperatorLineage`` of a transfer, or None when the openlineage provider is not installed.

    :param callback_url: the (rendered) callback URL the transfer downloaded.
    :param destination: what it wrote: an ``ObjectStoragePath`` or a URL string; None reports the
        input only (a failed transfer wrote nothing).
    :param account_name: the Azure storage account, when ``destination`` is Airflow's ``abfs://`` /
        ``wasb://`` URL string; read from an ``ObjectStoragePath``'s filesystem otherwise.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    inputs = [Dataset(*export_dataset(callback_url))]
    if destination is None:
        return OperatorLineage(inputs=inputs)
    if account_name is None and not isinstance(destination, str):
        account_name = _azure_account_of(destination)
    return OperatorLineage(inputs=inputs, outputs=[Dataset(*object_dataset(str(destination), account_name))])
