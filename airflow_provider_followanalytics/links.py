"""Operator extra links: the object a transfer or a one-task export wrote, opened in its store's console.

The task computes the link when its write succeeded and keeps it in an XCom (``_link_<class name>``), so
the UI shows it after the task ended: on Airflow 3 the API server reads that XCom by the key the
serialized DAG names; on Airflow 2 the webserver calls :meth:`~DestinationLink.get_link`, which reads it.
A task that wrote nothing (failed, still deferred, or ``skip_email=False``) and a local file have no link.
The links hold the bucket, container and object names only: never a connection id, a ``user@``, a query
(a SAS token) nor the callback URL. Importing this module loads no cloud library.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow_provider_followanalytics._compat import BaseOperatorLink, xcom_class

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def _bucket_and_key(uri: str) -> tuple[str, str, str]:
    """(scheme, bucket, key) of ``scheme://[user@]bucket/key``: no URL parsing (keys may hold ``?`` or ``#``)."""
    scheme, _, rest = uri.partition("://")
    netloc, _, key = rest.partition("/")
    return scheme.lower(), netloc.rpartition("@")[2], key


class DestinationLink(BaseOperatorLink):
    """Base of the links to a written object: one store's console page of it, read from the task's XCom.

    A subclass names its button (``name``), the URL schemes of its store (``schemes``) and the console URL
    (``url_template``, with ``{bucket}`` and ``{key}`` percent-encoded, ``/`` kept in the key; or its own
    :meth:`url_of`). An operator lists the links it may show in ``operator_extra_links``; after a successful
    write it calls :func:`persist_destination_link`.
    """

    #: The button's label in the UI.
    name: ClassVar[str] = ""
    #: The URL schemes of the objects this link opens (lower case).
    schemes: ClassVar[frozenset[str]] = frozenset()
    #: The console URL of ``{bucket}`` and ``{key}``.
    url_template: ClassVar[str] = ""

    @property
    def xcom_key(self) -> str:
        """The XCom key the link is kept under: ``_link_<class name>`` (Airflow 3's default)."""
        return f"_link_{type(self).__name__}"

    def url_of(self, uri: str, path: Any = None) -> str:
        """The console URL of the object at ``uri``, or ``""`` when it names no object.

        :param uri: what the task wrote: ``scheme://bucket/key`` (a ``conn_id@`` is ignored).
        :param path: the ``ObjectStoragePath`` written, when there is one (its filesystem may know more).
        """
        _, bucket, key = _bucket_and_key(uri)
        if not self.url_template or not bucket or not key:
            return ""
        return self.url_template.format(bucket=quote(bucket, safe=""), key=quote(key, safe="/"))

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """The link the task kept, or ``""`` (the UI then shows none). Never raises.

        :param operator: the task (on Airflow 3 the live one, when the task runner keeps the link after the
            run; on Airflow 2 the webserver's deserialized one).
        :param ti_key: the task instance (its key) to read the XCom of.
        """
        try:
            kept = getattr(operator, "_followanalytics_links", None)  # the task's own process: no XCom read
            value = kept.get(self.xcom_key) if isinstance(kept, dict) else None
            if value is None:
                value = xcom_class().get_value(ti_key=ti_key, key=self.xcom_key)
        except Exception:  # a link must never fail a task (Airflow 3.0's task runner does not catch it)
            log.debug("No %s link for %s", self.name, ti_key, exc_info=True)
            return ""
        return value if isinstance(value, str) and value.startswith(("https://", "http://")) else ""


class S3ObjectLink(DestinationLink):
    """The object in the AWS S3 console: ``https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}``.

    The key is percent-encoded (``/`` kept); the console finds the bucket's region. AWS China and GovCloud
    consoles are not covered.
    """

    name = "S3 object"
    schemes = frozenset({"s3", "s3a", "s3n"})
    url_template = "https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"


class GCSObjectLink(DestinationLink):
    """The object's details page in the Google Cloud console:
    ``https://console.cloud.google.com/storage/browser/_details/{bucket}/{object}`` (object percent-encoded,
    ``/`` kept)."""

    name = "GCS object"
    schemes = frozenset({"gs", "gcs"})
    url_template = "https://console.cloud.google.com/storage/browser/_details/{bucket}/{key}"


class AzureBlobLink(DestinationLink):
    """The blob's own URL on its storage account's Blob endpoint:
    ``https://{account}.blob.core.windows.net/{container}/{path}`` (the emulator's or a custom endpoint when
    the connection uses one; path percent-encoded, ``/`` kept).

    This is the URL the Azure portal shows on the blob's *Properties*. Not a portal page: every portal page
    of a blob or container is addressed by the storage account's Azure Resource Manager id (subscription and
    resource group), which neither ``abfs://conn_id@container/path`` nor the Azure connection carries. A
    browser opens the URL where the container allows anonymous reads; otherwise Azure answers with an error,
    and a signed-in tool reads the blob by it (``az storage blob download --blob-url <link> --auth-mode login``).
    The account (and endpoint) come from the ``ObjectStoragePath``'s filesystem (adlfs), as for lineage;
    without it (an account only its credential knows) there is no link. A query (a SAS token) is never kept.
    """

    name = "Azure blob"
    schemes = frozenset({"abfs", "abfss", "az", "wasb", "wasbs", "adl"})

    def url_of(self, uri: str, path: Any = None) -> str:
        """``{blob endpoint}/{container}/{path}``, or ``""`` when the account is unknown.

        :param uri: ``abfs://container/path`` (or Azure's ``abfss://container@account.dfs.core.windows.net/path``).
        :param path: the ``ObjectStoragePath`` written (its adlfs filesystem knows the account).
        """
        _, host, key = _bucket_and_key(uri)
        userinfo = uri.partition("://")[2].partition("/")[0].rpartition("@")[0]
        container, endpoint = host, _blob_endpoint(path)
        if "." in host:  # Azure's own form container@account.<dfs|blob>.<suffix>: container names have no dot
            account, _, suffix = host.partition(".")
            container = userinfo
            endpoint = endpoint or f"https://{account}.blob.{suffix.partition('.')[2] or 'core.windows.net'}"
        if not endpoint or not container or not key:
            return ""
        return f"{endpoint}/{quote(container, safe='')}/{quote(key, safe='/')}"


def _blob_endpoint(path: Any) -> str | None:
    """``scheme://host[/account]`` of the Blob service an adlfs ``ObjectStoragePath`` writes to, or None."""
    if path is None or isinstance(path, str):
        return None
    try:
        fs = path.fs
        client = getattr(fs, "service_client", None)
        url = getattr(client, "url", None) or getattr(client, "primary_endpoint", None)
        account = getattr(fs, "account_name", None) or getattr(client, "account_name", None)
    except Exception:  # a path whose filesystem cannot be built has no endpoint
        return None
    if isinstance(url, str) and url:
        parts = urlsplit(url)  # drop a SAS query, a fragment and any user@
        host = parts.netloc.rpartition("@")[2]
        if parts.scheme in ("https", "http") and host:
            return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
    return f"https://{account}.blob.core.windows.net" if isinstance(account, str) and account else None


#: One of each link, in the order of the UI's buttons.
DESTINATION_LINKS: tuple[DestinationLink, ...] = (S3ObjectLink(), GCSObjectLink(), AzureBlobLink())


def links_for(destination: Any) -> tuple[DestinationLink, ...]:
    """The links an operator writing to ``destination`` may show.

    None (no destination) and a store without a console (a local file) have none; a known store has its
    own; a URL whose scheme is a template has all three (the one that applies gets a link).

    :param destination: an ``ObjectStoragePath``, its URL (possibly templated), or None.
    """
    if destination is None:
        return ()
    protocol = getattr(destination, "protocol", None)
    if isinstance(protocol, str):
        scheme: str | None = protocol.lower()
    else:
        head, sep, _ = str(destination).partition("://")
        scheme = head.lower() if sep and _SCHEME.fullmatch(head) else None
    if scheme is None:
        return DESTINATION_LINKS
    return tuple(link for link in DESTINATION_LINKS if scheme in link.schemes)


def persist_destination_link(context: Mapping[str, Any], operator: Any, uri: str, path: Any = None) -> str:
    """Keep the link to the object ``operator`` just wrote, for the UI; return it (``""``: none).

    Call it once the object is written. Only a link the operator lists in ``operator_extra_links`` is kept;
    a context without a task instance (an operator run by hand) keeps none. Never raises: the object is
    written, a link is no reason to fail the task.

    :param context: the task's execute context (its ``ti`` pushes the XCom).
    :param operator: the operator that wrote the object.
    :param uri: what it wrote: ``scheme://bucket/key`` (``file:///...`` has no link).
    :param path: the ``ObjectStoragePath`` written, if any (the Azure account comes from its filesystem).
    """
    try:
        scheme = uri.partition("://")[0].lower()
        for link in getattr(operator, "operator_extra_links", ()):
            if isinstance(link, DestinationLink) and scheme in link.schemes:
                url = link.url_of(uri, path)
                if not url:
                    return ""
                operator._followanalytics_links = {link.xcom_key: url}  # read back by get_link in this process
                ti = context.get("ti")
                if ti is not None:
                    ti.xcom_push(key=link.xcom_key, value=url)
                return url
    except Exception as exc:
        operator.log.warning("Could not keep the link to %s for the UI (%s: %s)", uri, type(exc).__name__, exc)
    return ""


__all__ = [
    "DESTINATION_LINKS",
    "AzureBlobLink",
    "DestinationLink",
    "GCSObjectLink",
    "S3ObjectLink",
    "links_for",
    "persist_destination_link",
]
