"""The generic export operator, which every typed export of ``operators/exports.py`` extends (internal).

Import it from :mod:`airflow_provider_followanalytics.operators.exports`, with the typed exports; the
module's docstring and the README's *Export operators* tell how arguments are checked and sent.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_followanalytics import DEFAULT_CONN_ID
from airflow_provider_followanalytics._checks import check_failure_budget, check_int, check_seconds, require_provider
from airflow_provider_followanalytics._compat import BaseOperator, conf, lineage_uri_object
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.hooks._destination import PACKAGES_BY_PROTOCOL, static_destination
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.links import DESTINATION_LINKS, links_for
from airflow_provider_followanalytics.operators._arguments import (
    COMMON_FIELDS,
    ONE_TASK_FIELDS,
    Arg,
    build_request,
    check_literals,
)
from airflow_provider_followanalytics.operators._one_task import OneTask, start_or_reuse
from airflow_provider_followanalytics.operators._windows import run_interval
from airflow_provider_followanalytics.triggers._waiting import DEFAULT_MAX_CONSECUTIVE_FAILURES, DEFAULT_WAIT_TIMEOUT

MiB = 1 << 20

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context  # type hints only (Airflow 2 has the same mapping type)


class FollowAnalyticsExportOperator(BaseOperator):
    """Start any FollowAnalytics export and return its callback URL.

    Use it for an export endpoint that has no dedicated operator below; it logs in with the
    connection, calls ``GET <endpoint>.<file_format>`` with ``query_params`` and ``skip_email``,
    and returns what the API answered. The typed exports (subclasses) take the same arguments but
    ``query_params``, plus their own. Every argument is templated.

    .. code-block:: python

        start = FollowAnalyticsExportOperator(
            task_id="start_export",
            endpoint="/api/apps/FAAPPLI_123456789/devices_export",
            query_params={"fields": ["device_id", "current_user_id"], "updated_since": "{{ data_interval_start }}"},
        )

    :param endpoint: export path without format suffix, starting with ``/``, e.g.
        ``"/api/performance_export"`` (no ``?``, ``#``, spaces or ``..``). Optional for a typed
        export, whose documented path is the default; there it is a template whose ``{name}``
        placeholders (``{app_identifier}``, ``{segment_id}``) take the percent-encoded identifiers.
    :param query_params: query parameters (named so because ``params`` belongs to Airflow's
        DAG Params). Lists are sent as comma lists, booleans as ``true``/``false``, ``None``
        values are left out; ``skip_email`` has its own argument.
    :param file_format: ``"csv"`` (UTF-8, default) or ``"xls"``; sent as the path suffix.
    :param skip_email: ``True`` (default) to get a callback URL to download from; ``False``
        to have FollowAnalytics e-mail the file to the account.
    :param followanalytics_conn_id: the FollowAnalytics connection.
    :param destination: the one-task form: an ``ObjectStoragePath`` or its URL (templated), as for
        ``FollowAnalyticsToObjectStorageOperator`` (``file:///data/x.csv``, ``s3://conn_id@bucket/key``,
        ``gs://conn_id@bucket/name``, ``abfs://conn_id@container/path``). The task checks it before any
        FollowAnalytics request, starts the export, waits, streams the file into it and returns its URL.
    :param destination_conn_id: the store's connection when the URL names none (templated).
    :param replace: overwrite an existing object (default: fail before the export request).
    :param gzip: compress on the fly into one gzip member (a warning when ``destination`` does not end in ``.gz``).
    :param gzip_level: zlib compression level with ``gzip``, 0-9 (default 6).
    :param content_type: the object's Content-Type on S3, GCS and Azure (default: the export's).
    :param block_size: bytes the store's file sends at a time (default 8 MiB; S3 needs >= 5 MiB).
    :param deferrable: wait in the triggerer (no worker slot held) instead of polling in the worker.
        Default: ``[operators] default_deferrable``.
    :param poll_interval: seconds between two checks of a pending export (default 60).
    :param wait_timeout: seconds to wait for the export (default 24 hours).
    :param max_consecutive_failures: failed checks in a row (network, 429, 5xx) before failing (default 5).
    :param download_attempts: downloads before giving up (default: the connection's ``max_retries`` + 1).
    :param allow_empty: with ``destination``, a CSV export with no data row is written with a warning
        (default); ``False`` fails the task instead, before anything is written.
    :return: the callback URL (``skip_email=True``), the API's confirmation message (``skip_email=False``),
        or with ``destination`` the destination's URL without its connection id.

    On Airflow 3.3+ a retry (or a clear) in the same run first asks the callback URL of the export an
    earlier try started, kept in the task's durable state: still pending or ready, it is reused
    without a new export request; expired, a new export is started. Before 3.3 a retry starts a new
    export. README *One task from export to lake*.
    """

    template_fields: Sequence[str] = (
        "endpoint",
        "query_params",
        "file_format",
        "skip_email",
        "followanalytics_conn_id",
        *ONE_TASK_FIELDS,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"query_params": "json"}
    ui_color = "#e8f1fb"
    #: The one-task form's link to the object written, narrowed per task to the destination's store (none
    #: without ``destination`` or for a local file), see ``links.links_for``.
    operator_extra_links = DESTINATION_LINKS
    #: What the export is, for logs.
    export_title: ClassVar[str] = "custom"
    # A typed export (subclass) declares these and its title; the base class does the rest: template_fields,
    # checks at parse (literal values) and after rendering, the query, logs (see ``_arguments``).
    #: Path template; ``{name}`` placeholders take the identifiers of that name. None: ``endpoint`` as given.
    default_endpoint: ClassVar[str | None] = None
    #: The export's own arguments, in the order they are checked and sent.
    export_arguments: ClassVar[tuple[Arg, ...]] = ()
    #: What the export is about, for logs, formatted with the checked arguments.
    export_subject: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give a typed export its ``template_fields`` (its own arguments, then the common ones), and refuse
        one whose ``__init__`` does not take exactly the declared arguments (plus the common ones)."""
        super().__init_subclass__(**kwargs)
        if "export_arguments" not in cls.__dict__:
            return
        own = [name for arg in cls.export_arguments for name in arg.names]
        if "template_fields" not in cls.__dict__:
            cls.template_fields = (*own, *COMMON_FIELDS, *ONE_TASK_FIELDS)
        code = inspect.unwrap(cls.__init__).__code__  # its code object: inspect.signature costs DAG parse time
        keyword_only = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
        taken = [name for name in keyword_only if name not in COMMON_FIELDS]
        if sorted(taken) != sorted(own):
            raise TypeError(f"{cls.__name__}.__init__ takes {taken}, but the class declares {own}.")

    def __init__(
        self,
        *,
        endpoint: str,
        query_params: Mapping[str, Any] | None = None,
        file_format: str = "csv",
        skip_email: bool = True,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        destination: Any = None,
        destination_conn_id: str | None = None,
        replace: bool = False,
        gzip: bool = False,
        gzip_level: int = 6,
        content_type: str | None = None,
        block_size: int = 8 * MiB,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60.0,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        download_attempts: int | None = None,
        allow_empty: bool = True,
        **kwargs: Any,
    ) -> None:
        # A typed export's own arguments arrive here through its __init__; BaseOperator must not get them.
        own = {name: kwargs.pop(name) for arg in self.export_arguments for name in arg.names}
        static = static_destination(destination) if destination is not None else None
        if static is not None:
            for module, requirement in PACKAGES_BY_PROTOCOL.get(static[0], ()):
                require_provider(type(self).__name__, module, requirement)
            if "outlets" not in kwargs:
                kwargs["outlets"] = [lineage_uri_object(static[1])]
        super().__init__(**kwargs)
        self.destination, self.destination_conn_id, self.replace = destination, destination_conn_id, replace
        self.gzip, self.content_type = gzip, content_type
        self.gzip_level = check_int("gzip_level", gzip_level, 0, 9, "an integer from 0 to 9")
        self.block_size = check_int("block_size", block_size, 256 * 1024, 1 << 40, "at least 256 KiB")
        self.deferrable = deferrable
        self.poll_interval = check_seconds("poll_interval", poll_interval)
        self.wait_timeout = check_seconds("wait_timeout", wait_timeout)
        self.max_consecutive_failures = check_failure_budget(max_consecutive_failures)
        if download_attempts is not None:
            check_int("download_attempts", download_attempts, 1, 1 << 20, "a positive integer (or None)")
        self.download_attempts, self.allow_empty = download_attempts, allow_empty
        self.operator_extra_links = links_for(destination)
        #: The callback URL of this try's export, and the path written (for lineage).
        self.callback_url: str | None = None
        self.written_to: Any = None
        self.export_content: Any = None
        self.endpoint = self.default_endpoint if endpoint is None else endpoint
        self.query_params = query_params
        self.file_format = file_format
        self.skip_email = skip_email
        self.followanalytics_conn_id = followanalytics_conn_id
        for name, value in own.items():
            setattr(self, name, value)
        if kwargs.get("params") and query_params is None and type(self) is FollowAnalyticsExportOperator:
            self.log.warning(
                "FollowAnalyticsExportOperator %r got params= but no query_params=: params are Airflow DAG "
                "Params (values for templates), not API query parameters, and are not sent to FollowAnalytics. "
                "Put the export's query parameters in query_params={...}.",
                self.task_id,
            )
        check_literals(self)  # a literal mistake fails the DAG file's parse
        if destination is not None and skip_email is False:
            raise FollowAnalyticsConfigError(
                f"{type(self).__name__} got destination= with skip_email=False: an e-mailed export has no file "
                "to write. Leave skip_email at True, or drop destination."
            )

    def execute(self, context: Context) -> str:
        """Start the export (see the class docstring); return the callback URL or the e-mail message."""
        # Everything is rendered now: check it all, delta windows against the run's data interval.
        request, file_format, skip_email, conn_id = build_request(self, run_interval(context))
        from airflow_provider_followanalytics.operators._fair_use import warn_if_scheduled_more_than_daily

        warn_if_scheduled_more_than_daily(self)  # imported here: a run's cost, not the DAG parse's
        self.log.info(
            "Starting FollowAnalytics %s export (%s): GET %s.%s, skip_email=%s",
            self.export_title,
            request.describe(),
            request.endpoint,
            file_format,
            str(skip_email).lower(),
        )
        hook = FollowAnalyticsHook(conn_id)
        try:
            if not skip_email:
                if self.destination is not None:
                    raise FollowAnalyticsConfigError(
                        f"skip_email rendered as false with destination={self.destination!r}: an e-mailed export "
                        "has no file to write."
                    )
                message = hook.start_export(request.endpoint, request.query, file_format=file_format, skip_email=False)
                self.log.info("FollowAnalytics will e-mail the file: %s", message)
                return message
            one_task = None if self.destination is None else OneTask(self, hook)
            if one_task is not None:
                one_task.check_destination()  # before any FollowAnalytics request

            def start() -> str:
                url = hook.start_export(request.endpoint, request.query, file_format=file_format, skip_email=True)
                self.log.info("FollowAnalytics is generating the file; callback URL: %s", redact_url(url))
                return url

            self.callback_url = url = start_or_reuse(self, context, hook, start)
            return url if one_task is None else one_task.wait_then_write(context, url)
        finally:
            hook.close()

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume the one-task form after ``ExportReadyTrigger`` fired: stream the export into the destination.

        :param event: the trigger's payload (``status`` ``ready``, ``error`` or ``timeout``).
        """
        hook = FollowAnalyticsHook(self.followanalytics_conn_id)
        try:
            return OneTask(self, hook).resume(context, event)
        finally:
            hook.close()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage of the one-task form: the export in (no token), the object out; None otherwise."""
        if self.destination is None or self.callback_url is None:
            return None
        from airflow_provider_followanalytics.transfers._lineage import lineage_of

        return lineage_of(self.callback_url, self.written_to, content=self.export_content)
