"""The provider's metrics, sent through Airflow's own ``Stats`` under ``followanalytics.`` (internal).

Airflow's ``[metrics]`` section decides where they go (StatsD, DogStatsD or OpenTelemetry) and adds
the user's ``statsd_prefix``: ``airflow.followanalytics.logins``. Tags go as ``tags=``: DogStatsD and
OpenTelemetry keep them, StatsD with ``statsd_influxdb_enabled`` appends them to the name
(``,client=sync``), plain StatsD drops them. Every name and tag value is a constant of this module
(a tag value is one of a fixed set): never an identifier, a URL or a token.

- ``followanalytics.export_started`` (counter): ``export_type`` (:data:`EXPORT_TYPE_OF_ENDPOINT`, or ``custom``)
- ``followanalytics.export_ready_latency`` (timer): ``waiter``, ``triggerer`` or ``worker``
- ``followanalytics.http_retries`` (counter): ``cause`` (:data:`RETRY_CAUSES`), ``client``
- ``followanalytics.logins`` (counter): ``client``, ``sync`` (the worker's) or ``async`` (the triggerer's)
- ``followanalytics.relogins`` (counter): ``client``
- ``followanalytics.download_restarts`` (counter), no tag
- ``followanalytics.bytes_downloaded``, ``followanalytics.bytes_written`` (counters), ``store``
- ``followanalytics.transfer_duration`` (timer): ``store``

Free when metrics are off: the first call reads ``[metrics]`` once per process; when none of
``statsd_on``, ``statsd_datadog_enabled`` and ``otel_on`` is set (the three options Airflow 2.10 to
3.3 choose their logger by, anything else being its no-op logger), every function returns at its
first line, before any tag dict, timedelta or ``Stats`` lookup. Metrics never fail a task: an error
of the metrics backend is logged once at debug level and swallowed.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

__all__ = [
    "EXPORT_TYPE_OF_ENDPOINT",
    "RETRY_CAUSES",
    "download_restarted",
    "enabled",
    "export_ready",
    "export_started",
    "export_type_of",
    "http_retry",
    "login",
    "relogin",
    "retry_cause",
    "transfer_finished",
]

log = logging.getLogger(__name__)

EXPORT_STARTED = "followanalytics.export_started"
EXPORT_READY_LATENCY = "followanalytics.export_ready_latency"
HTTP_RETRIES = "followanalytics.http_retries"
LOGINS = "followanalytics.logins"
RELOGINS = "followanalytics.relogins"
DOWNLOAD_RESTARTS = "followanalytics.download_restarts"
BYTES_DOWNLOADED = "followanalytics.bytes_downloaded"
BYTES_WRITTEN = "followanalytics.bytes_written"
TRANSFER_DURATION = "followanalytics.transfer_duration"

#: The export type (tag ``export_type``) of each export endpoint of ``operators/exports.py``, by path
#: template: a ``{...}`` segment stands for any one segment (an identifier, which no tag carries).
#: Any other path is ``custom``.
EXPORT_TYPE_OF_ENDPOINT: dict[str, str] = {
    "/segments/{segment_id}/devices_export": "segment_devices",
    "/api/segments/{segment_id}/devices_export": "segment_devices",  # the API serves both spellings
    "/api/apps/{app_identifier}/devices_export": "app_devices",
    "/api/apps/{app_identifier}/events_export": "app_events",
    "/api/performance_export": "performance",
    "/api/apps/{app_identifier}/analytics/download_metrics": "user_metrics",
    "/api/events_export": "event_analysis",
    "/api/event_details_export": "event_context",
}
CUSTOM_EXPORT = "custom"
_TEMPLATES = tuple((tuple(path.split("/")), kind) for path, kind in EXPORT_TYPE_OF_ENDPOINT.items())

#: Values of the ``cause`` tag of ``followanalytics.http_retries``.
RETRY_CAUSES = ("connection", "timeout", "429", "5xx")
#: What each store tag may look like: a URL scheme such as ``s3``, ``gcs``, ``abfs``, ``file``.
_STORE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")

_enabled: bool | None = None  # [metrics] read once per process
_stats: Any = None
_failed = False


def enabled() -> bool:
    """True when Airflow's ``[metrics]`` sends metrics somewhere (read once per process)."""
    global _enabled
    if _enabled is None:
        from airflow_provider_followanalytics._compat import conf

        options = ("statsd_on", "statsd_datadog_enabled", "otel_on")
        _enabled = any(conf.getboolean("metrics", option, fallback=False) for option in options)
    return _enabled


def _send(method: str, name: str, value: Any, tags: dict[str, str] | None) -> None:
    global _stats, _failed
    try:
        if _stats is None:
            from airflow_provider_followanalytics._compat import stats

            _stats = stats()
        getattr(_stats, method)(name, value, tags=tags)
    except Exception:  # a metric must never fail the task or the trigger
        if not _failed:
            _failed = True
            log.debug("Sending FollowAnalytics metric %s failed", name, exc_info=True)


def export_type_of(endpoint: str) -> str:
    """The ``export_type`` tag of an export endpoint path (without format suffix): ``segment_devices``, ...

    :param endpoint: the path, e.g. ``"/segments/FASEGMT_abcd12/devices_export"``.
    """
    parts = endpoint.split("/")
    for template, kind in _TEMPLATES:
        if len(template) == len(parts) and all(
            want == got or (want.startswith("{") and got) for want, got in zip(template, parts, strict=True)
        ):
            return kind
    return CUSTOM_EXPORT


def export_started(export_type: str) -> None:
    """Count one export the server accepted (``followanalytics.export_started``).

    :param export_type: from :func:`export_type_of`.
    """
    if enabled():
        _send("incr", EXPORT_STARTED, 1, {"export_type": export_type})


def export_ready(seconds: float, waiter: str) -> None:
    """Time one wait that ended with the export ready (``followanalytics.export_ready_latency``).

    :param seconds: from the wait's first status check to the check that answered ready, on the
        waiting process's monotonic clock (each caller says which checks).
    :param waiter: ``triggerer`` or ``worker``.
    """
    if enabled():
        _send("timing", EXPORT_READY_LATENCY, dt.timedelta(seconds=seconds), {"waiter": waiter})


def retry_cause(http_status: int | None, timed_out: bool) -> str:
    """The ``cause`` tag of a retried request: ``429``, ``5xx``, else ``timeout`` or ``connection``.

    :param http_status: the status that is retried; None when no answer came.
    :param timed_out: no answer came because a timeout expired.
    """
    if http_status == 429:
        return "429"
    if http_status is not None and http_status >= 500:
        return "5xx"
    return "timeout" if timed_out else "connection"


def http_retry(cause: str, client: str) -> None:
    """Count one request (or poll) about to be retried (``followanalytics.http_retries``).

    :param cause: from :func:`retry_cause`.
    :param client: ``sync`` (the worker's ``requests`` client) or ``async`` (the triggerer's backoff).
    """
    if enabled():
        _send("incr", HTTP_RETRIES, 1, {"cause": cause, "client": client})


def login(client: str) -> None:
    """Count one login that returned a token (``followanalytics.logins``).

    :param client: ``sync`` or ``async``.
    """
    if enabled():
        _send("incr", LOGINS, 1, {"client": client})


def relogin(client: str) -> None:
    """Count one 401/403 that made the client log in again (``TokenKeeper.refused``; ``followanalytics.relogins``).

    :param client: ``sync`` or ``async``.
    """
    if enabled():
        _send("incr", RELOGINS, 1, {"client": client})


def download_restarted() -> None:
    """Count one download that broke off and starts again from zero (``followanalytics.download_restarts``)."""
    if enabled():
        _send("incr", DOWNLOAD_RESTARTS, 1, None)


def transfer_finished(*, bytes_downloaded: int, bytes_written: int, seconds: float, store: str) -> None:
    """Report one finished transfer: ``followanalytics.bytes_downloaded`` and ``followanalytics.bytes_written``
    (counters, in bytes) and ``followanalytics.transfer_duration`` (a timer), each tagged ``store``.

    :param bytes_downloaded: bytes of the export read from FollowAnalytics (the last, whole attempt).
    :param bytes_written: bytes written into the store (after gzip, if any).
    :param seconds: from the start of the download to the object committed.
    :param store: the destination's kind, e.g. ``s3``, ``gcs``, ``abfs``, ``file``; anything that is not
        a short lowercase word is sent as ``other``.
    """
    if not enabled():
        return
    store = store.lower()
    tags = {"store": store if 0 < len(store) <= 16 and _STORE_CHARS.issuperset(store) else "other"}
    _send("incr", BYTES_DOWNLOADED, bytes_downloaded, tags)
    _send("incr", BYTES_WRITTEN, bytes_written, tags)
    _send("timing", TRANSFER_DURATION, dt.timedelta(seconds=seconds), tags)
