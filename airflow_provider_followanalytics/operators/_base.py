"""The generic export operator, which every typed export of ``operators/exports.py`` extends (internal).

Import it from :mod:`airflow_provider_followanalytics.operators.exports`, with the typed exports; the
module's docstring and the README's *Export operators* tell how arguments are checked and sent.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_followanalytics import DEFAULT_CONN_ID
from airflow_provider_followanalytics._compat import BaseOperator
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.operators._arguments import COMMON_FIELDS, Arg, build_request, check_literals
from airflow_provider_followanalytics.operators._windows import run_interval

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
    :return: the callback URL (``skip_email=True``), else the API's confirmation message.
    """

    template_fields: Sequence[str] = (
        "endpoint",
        "query_params",
        "file_format",
        "skip_email",
        "followanalytics_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"query_params": "json"}
    ui_color = "#e8f1fb"
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
            cls.template_fields = (*own, *COMMON_FIELDS)
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
        **kwargs: Any,
    ) -> None:
        # A typed export's own arguments arrive here through its __init__; BaseOperator must not get them.
        own = {name: kwargs.pop(name) for arg in self.export_arguments for name in arg.names}
        super().__init__(**kwargs)
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
            result = hook.start_export(request.endpoint, request.query, file_format=file_format, skip_email=skip_email)
        finally:
            hook.close()
        if skip_email:
            self.log.info("FollowAnalytics is generating the file; callback URL: %s", redact_url(result))
        else:
            self.log.info("FollowAnalytics will e-mail the file: %s", result)
        return result
