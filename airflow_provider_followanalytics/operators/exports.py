"""Operators that start FollowAnalytics data exports.

Each operator asks the API to generate one export file and returns (XCom ``return_value``) the
export's callback URL, which :class:`~airflow_provider_followanalytics.sensors.export_ready.ExportReadySensor`
waits on and the transfer operators download; with ``skip_email=False`` the file is e-mailed to the
account instead and the operator returns the API's confirmation sentence.
:class:`FollowAnalyticsExportOperator` calls any export endpoint; one subclass per documented export
type (segment devices, app devices, app events, performance, user metrics, event analysis, event
context) builds the path and query for you.

Every argument is templated, and checked when the DAG file is parsed (values that are not
templates) and again after rendering, before any request: a wrong value fails the task with a
message that names it, and nothing is sent. Identifiers are percent-encoded in the path;
whitespace, ``/``, ``..``, ``?``, ``#``, ``%``, ``,`` and control characters are refused. List
arguments take a list/tuple or a comma string and are sent as ``a,b`` (an empty list leaves the
filter out). Dates take a datetime (naive = UTC), a date (midnight UTC), an ISO 8601 string
(``"2024-01-01"``, ``"{{ data_interval_start }}"``) or epoch seconds; ISO arguments
(``updated_since``, ``since_date``, ``until_date``) are sent as ISO 8601 in UTC.

Periods (``period_start``/``period_end``, sent as ``sd``/``ed`` in epoch seconds) are whole days:
both at exactly midnight UTC, the end after the start. ``"{{ data_interval_start }}"`` /
``"{{ data_interval_end }}"`` of a daily UTC schedule fit. Airflow 3 turns ``schedule="@daily"`` into
a ``CronTriggerTimetable`` whose data interval is empty (start = end), which the operators refuse;
use ``schedule=CronDataIntervalTimetable("@daily", timezone="UTC")`` (same meaning on Airflow 2 and
3) or set ``[scheduler] create_cron_data_intervals = True``.

Delta windows are refused when empty, with the same advice: ``until_date`` must be after
``since_date``, and an open delta (``updated_since``, or ``since_date`` without ``until_date``:
"what changed since then") must start before the run's ``data_interval_end``; a later start exports
none of the interval the run covers and leaves a gap no later run fills. Without a data interval (a
manual run without logical date) an open delta is sent as given.

Fair use: FollowAnalytics asks that each export API be called at most once a day. These operators
log a warning when their DAG is scheduled more often (they do not fail). Prefer a daily schedule
with delta parameters (``updated_since``, ``since_date``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics import DEFAULT_CONN_ID
from airflow_provider_followanalytics.operators._arguments import (
    APP,
    SEGMENT,
    CommaList,
    DeltaStart,
    Identifier,
    IsoWindow,
    Period,
    PositiveInteger,
    passed_on,
)
from airflow_provider_followanalytics.operators._base import FollowAnalyticsExportOperator

if TYPE_CHECKING:
    from airflow_provider_followanalytics.operators._params import ListLike
    from airflow_provider_followanalytics.operators._windows import DateLike

__all__ = [
    "FollowAnalyticsAppDevicesExportOperator",
    "FollowAnalyticsAppEventsExportOperator",
    "FollowAnalyticsEventAnalysisExportOperator",
    "FollowAnalyticsEventContextExportOperator",
    "FollowAnalyticsExportOperator",
    "FollowAnalyticsPerformanceExportOperator",
    "FollowAnalyticsSegmentDevicesExportOperator",
    "FollowAnalyticsUserMetricsExportOperator",
]


# Each typed export below only declares itself. Its explicit __init__ is there for IDEs, type checkers
# and Airflow, which reads each class's own signature (default_args, required arguments, partial/expand);
# the body passes every argument on to the base class, which refuses a signature that drifts from
# ``export_arguments``. Its docstring names only its own arguments: the others are the base class's.


class FollowAnalyticsSegmentDevicesExportOperator(FollowAnalyticsExportOperator):
    """Export the devices of a segment (with their user ids and other fields), as CSV or XLS.

    Calls ``/segments/{segment_id}/devices_export`` (the path as documented, without the
    ``/api`` prefix of the other exports; pass ``endpoint`` to change it, e.g.
    ``"/api/segments/{segment_id}/devices_export"``). Run it daily with ``updated_since`` set to
    the start of the data interval to move only the devices that changed.

    :param segment_id: segment identifier, e.g. ``"FASEGMT_abcd12"``.
    :param fields: device fields to export, e.g. ``["current_user_id"]``; all fields when not given.
    :param updated_since: only devices updated since this moment; must be before the run's
        ``data_interval_end`` (see the module docstring).
    """

    default_endpoint = "/segments/{segment_id}/devices_export"
    export_arguments = (
        Identifier("segment_id", example=SEGMENT),
        CommaList("fields", example="current_user_id"),
        DeltaStart("updated_since"),
    )
    export_title = "segment devices"
    export_subject = "segment {segment_id!r}"

    def __init__(
        self,
        *,
        segment_id: str,
        fields: ListLike | None = None,
        updated_since: DateLike | None = None,
        endpoint: str | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**passed_on(locals()))


class FollowAnalyticsAppDevicesExportOperator(FollowAnalyticsExportOperator):
    """Export the devices of an app (one row per device, with its user id and fields).

    Calls ``/api/apps/{app_identifier}/devices_export``. Filters are optional and combine;
    ``updated_since`` makes a daily delta export.

    :param app_identifier: app identifier, e.g. ``"FAAPPLI_123456789"``.
    :param fields: device fields to export; all fields when not given.
    :param current_user_ids: only devices whose current user id is in this list.
    :param device_ids: only these devices.
    :param segment_ids: only devices in these segments (segment identifiers).
    :param updated_since: only devices updated since this moment; must be before the run's ``data_interval_end``.
    """

    default_endpoint = "/api/apps/{app_identifier}/devices_export"
    export_arguments = (
        Identifier("app_identifier"),
        CommaList("fields", example="device_id"),
        CommaList("current_user_ids", allow_spaces=True, example="user-42"),
        CommaList("device_ids", example="device-1"),
        CommaList("segment_ids", identifiers=True, example=SEGMENT),
        DeltaStart("updated_since"),
    )
    export_title = "app devices"
    export_subject = "app {app_identifier!r}"

    def __init__(
        self,
        *,
        app_identifier: str,
        fields: ListLike | None = None,
        current_user_ids: ListLike | None = None,
        device_ids: ListLike | None = None,
        segment_ids: ListLike | None = None,
        updated_since: DateLike | None = None,
        endpoint: str | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**passed_on(locals()))


class FollowAnalyticsAppEventsExportOperator(FollowAnalyticsExportOperator):
    """Export the raw events of an app (one row per event), optionally for a time window.

    Calls ``/api/apps/{app_identifier}/events_export``. For a daily delta, pass
    ``"{{ data_interval_start }}"`` / ``"{{ data_interval_end }}"`` as ``since_date`` / ``until_date``.

    :param app_identifier: app identifier, e.g. ``"FAAPPLI_123456789"``.
    :param fields: event fields to export; all fields when not given.
    :param since_date: first moment of the window. Without ``until_date``, it must be before the
        run's ``data_interval_end``.
    :param until_date: end of the window, after ``since_date`` (equal bounds are an empty window and
        refused). The API documentation does not say whether events at exactly ``until_date`` are
        included: the API receives this instant as given, in ISO 8601 UTC, so with the data interval
        as window consecutive runs share their boundary instant.
    :param device_ids: only events of these devices.
    :param user_ids: only events of these users.
    :param session_ids: only events of these sessions.
    """

    default_endpoint = "/api/apps/{app_identifier}/events_export"
    export_arguments = (
        Identifier("app_identifier"),
        CommaList("fields", example="event_name"),
        IsoWindow(),  # since_date, until_date
        CommaList("device_ids", example="device-1"),
        CommaList("user_ids", allow_spaces=True, example="user-42"),
        CommaList("session_ids", example="session-1"),
    )
    export_title = "app events"
    export_subject = "app {app_identifier!r}"

    def __init__(
        self,
        *,
        app_identifier: str,
        fields: ListLike | None = None,
        since_date: DateLike | None = None,
        until_date: DateLike | None = None,
        device_ids: ListLike | None = None,
        user_ids: ListLike | None = None,
        session_ids: ListLike | None = None,
        endpoint: str | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**passed_on(locals()))


class FollowAnalyticsPerformanceExportOperator(FollowAnalyticsExportOperator):
    """Export performance figures (downloads, engagement, crashes) of one or more apps over whole days.

    Calls ``/api/performance_export`` with ``apps``, ``sd`` and ``ed``.

    .. code-block:: python

        start = FollowAnalyticsPerformanceExportOperator(
            task_id="performance",
            app_identifiers=["FAAPPLI_123456789", "FAAPPLI_987654321"],
            period_start="{{ data_interval_start }}",
            period_end="{{ data_interval_end }}",
        )

    :param app_identifiers: apps to include (at least one), sent as ``apps``.
    :param period_start: first day of the period, at exactly midnight UTC; sent as ``sd``.
    :param period_end: end of the period, after ``period_start``; sent as ``ed``.
    """

    default_endpoint = "/api/performance_export"
    export_arguments = (
        CommaList("app_identifiers", key="apps", required=True, identifiers=True, example=APP),
        Period(required=True),  # period_start, period_end as sd, ed
    )
    export_title = "performance"
    export_subject = "apps {app_identifiers}"

    def __init__(
        self,
        *,
        app_identifiers: ListLike,
        period_start: DateLike,
        period_end: DateLike,
        endpoint: str | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**passed_on(locals()))


class FollowAnalyticsUserMetricsExportOperator(FollowAnalyticsExportOperator):
    """Export the user analytics metrics (high-level stats) of an app over whole days.

    Calls ``/api/apps/{app_identifier}/analytics/download_metrics`` with ``sd`` and ``ed``.
    The API documentation's parameter table for this endpoint also lists a required ``apps``
    (comma list of app identifiers) while its example URL omits it; the operator therefore also
    sends ``apps=<app_identifier>``, the same app as in the path, which satisfies either reading.
    Used like the performance export, with one ``app_identifier``.

    :param app_identifier: app identifier, e.g. ``"FAAPPLI_123456789"``.
    :param period_start: first day of the period, at exactly midnight UTC; sent as ``sd``.
    :param period_end: end of the period, after ``period_start``; sent as ``ed``.
    """

    default_endpoint = "/api/apps/{app_identifier}/analytics/download_metrics"
    export_arguments = (Identifier("app_identifier", key="apps"), Period(required=True))  # the path's app as apps
    export_title = "user metrics"
    export_subject = "app {app_identifier!r}"

    def __init__(
        self,
        *,
        app_identifier: str,
        period_start: DateLike,
        period_end: DateLike,
        endpoint: str | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**passed_on(locals()))


class FollowAnalyticsEventAnalysisExportOperator(FollowAnalyticsExportOperator):
    """Export the top events of an app, over whole days or the API's default (the last 6 days).

    Calls ``/api/events_export`` with ``app`` and, when a period is given, ``sd`` and ``ed``.

    :param app_identifier: app identifier, e.g. ``"FAAPPLI_123456789"``, sent as ``app``.
    :param period_start: first day of the period, at exactly midnight UTC; sent as ``sd``. Give both
        ``period_start`` and ``period_end``, or neither.
    :param period_end: end of the period, after ``period_start``; sent as ``ed``.
    """

    default_endpoint = "/api/events_export"
    export_arguments = (Identifier("app_identifier", key="app"), Period())
    export_title = "event analysis"
    export_subject = "app {app_identifier!r}"

    def __init__(
        self,
        *,
        app_identifier: str,
        period_start: DateLike | None = None,
        period_end: DateLike | None = None,
        endpoint: str | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**passed_on(locals()))


class FollowAnalyticsEventContextExportOperator(FollowAnalyticsExportOperator):
    """Export the context of one event of an app (what surrounds it), over whole days or the API's default.

    Calls ``/api/event_details_export`` with ``app``, ``event_id`` and, when a period is given,
    ``sd`` and ``ed`` (without them the API uses its own default window).

    :param app_identifier: app identifier, e.g. ``"FAAPPLI_123456789"``, sent as ``app``.
    :param event_id: the event's integer id (``42`` or ``"42"``).
    :param period_start: first day of the period, at exactly midnight UTC; sent as ``sd``. Give both
        ``period_start`` and ``period_end``, or neither.
    :param period_end: end of the period, after ``period_start``; sent as ``ed``.
    """

    default_endpoint = "/api/event_details_export"
    export_arguments = (Identifier("app_identifier", key="app"), PositiveInteger("event_id"), Period())
    export_title = "event context"
    export_subject = "app {app_identifier!r}, event {event_id}"

    def __init__(
        self,
        *,
        app_identifier: str,
        event_id: int | str,
        period_start: DateLike | None = None,
        period_end: DateLike | None = None,
        endpoint: str | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**passed_on(locals()))
