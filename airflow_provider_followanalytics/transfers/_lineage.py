"""OpenLineage datasets of a transfer: the FollowAnalytics export in, the object written out.

The openlineage provider is imported by :func:`lineage_of` only (DAG files stay cheap to parse). Names follow
the OpenLineage naming spec (``openlineage.client.naming.dataset``, the providers' asset converters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BUCKET_SCHEMES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs"}  # the spec's name of each
_AZURE_SCHEMES = {"abfs": "abfss", "abfss": "abfss", "wasb": "wasbs", "wasbs": "wasbs"}
_AZURE_DOMAIN = "dfs.core.windows.net"  # what the naming spec puts after the account, for both


def export_dataset(callback_url: str) -> tuple[str, str]:
    """Namespace (the API's ``scheme://host[:port]``, default port dropped) and name (the URL's path) of
    the export a callback URL downloads: never the query (the export token) nor a ``user:password@``."""
    parts = urlsplit(callback_url)
    scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}", parts.path or "/"


def object_dataset(destination_uri: str, account_name: str | None = None) -> tuple[str, str]:
    """Namespace and name of the object at ``destination_uri``: Airflow's ``scheme://conn_id@bucket/key``
    (the connection id dropped) or the store's own URL. Airflow's ``abfs://conn_id@container/path`` does
    not carry the Azure storage account: pass it as ``account_name`` (else the namespace is
    ``abfss://container``); Azure's own ``abfss://container@account.dfs.core.windows.net/path`` does."""
    parts = urlsplit(destination_uri)
    scheme = parts.scheme.lower() or "file"
    userinfo, _, host = parts.netloc.rpartition("@")
    key = parts.path.lstrip("/") or "/"
    if scheme in ("file", "local"):
        return (f"file://{host}" if host else "file"), parts.path or "/"
    if scheme in _BUCKET_SCHEMES:
        return f"{_BUCKET_SCHEMES[scheme]}://{host}", key
    if scheme in _AZURE_SCHEMES:
        account, container = account_name, host
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


def lineage_wanted() -> bool:
    """Whether OpenLineage will send this task's events (the provider installed, a transport configured,
    not disabled: its own ``is_disabled()``): only then are rows counted."""
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    return not is_disabled()


def lineage_of(
    callback_url: str, destination: Any = None, account_name: str | None = None, content: Any = None
) -> OperatorLineage | None:
    """The ``OperatorLineage`` of a transfer, or None when the openlineage provider is not installed.

    ``destination`` is what it wrote (an ``ObjectStoragePath`` or a URL; None reports the input only);
    ``account_name`` is the Azure account of an ``abfs://`` URL string (read from a path's filesystem);
    ``content`` (an ``ExportContent``) adds the output's ``schema`` (the CSV header's columns, as strings)
    and ``outputStatistics`` (its size in bytes as served, and the exact row count of a CSV).
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset, OutputDataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    inputs = [Dataset(*export_dataset(callback_url))]
    if destination is None:
        return OperatorLineage(inputs=inputs)
    if account_name is None and not isinstance(destination, str):
        account_name = _azure_account_of(destination)
    namespace, name = object_dataset(str(destination), account_name)
    if content is None:
        return OperatorLineage(inputs=inputs, outputs=[Dataset(namespace, name)])
    facets, output_facets = _facets_of(content)
    output = OutputDataset(namespace, name, facets=facets, outputFacets=output_facets)
    return OperatorLineage(inputs=inputs, outputs=[output])


def _facets_of(content: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The output's dataset facets (``schema``) and output facets (``outputStatistics``)."""
    from airflow.providers.common.compat.openlineage.facet import (
        OutputStatisticsOutputDatasetFacet,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    facets: dict[str, Any] = {}
    if content.columns:
        fields = [SchemaDatasetFacetFields(name=name, type="string") for name in content.columns]
        facets["schema"] = SchemaDatasetFacet(fields=fields)
    statistics = OutputStatisticsOutputDatasetFacet(rowCount=content.rows, size=content.size)
    return facets, {"outputStatistics": statistics}
