"""What every transfer shares: arguments, checks, deferral, the restart policy, logs and lineage (internal)."""

from __future__ import annotations

import importlib
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_followanalytics._checks import check_int, check_seconds, require_provider
from airflow_provider_followanalytics._compat import BaseOperator, conf, lineage_uri_object
from airflow_provider_followanalytics._rendering import MasksCallbackUrl
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
    FollowAnalyticsExportNotReadyError,
)
from airflow_provider_followanalytics.hooks._destination import (
    PACKAGE,
    check_stored_size,
    static_value,
)
from airflow_provider_followanalytics.hooks._export_reader import transfer_export
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.links import persist_destination_link
from airflow_provider_followanalytics.triggers._waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_WAIT_TIMEOUT,
    defer_until_ready,
    resume_from_event,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context  # type hints only (Airflow 2 has the same mapping type)

    from airflow_provider_followanalytics.hooks._export_reader import ExportReader


def static_uri(scheme: str, parse: Any, *values: object) -> str | None:
    """``scheme://bucket/key`` when ``parse(*values)`` names it at DAG parse time (no Jinja, valid), else None."""
    if any(value is not None and static_value(value) is None for value in values):
        return None
    try:
        return f"{scheme}://" + "/".join(parse(*values))
    except FollowAnalyticsConfigError:
        return None


class FollowAnalyticsTransferOperator(MasksCallbackUrl, BaseOperator):
    """Base of the transfers: stream a ready export into one object, or defer until it is ready.

    The upload runs while the export downloads, in bounded memory, and publishes the object only
    once the whole export arrived and matched its size: a broken download starts again from zero,
    and a transfer that gives up leaves nothing behind (README, *Transfers*). The object's
    Content-Type is the export's (CSV as ``text/csv; charset=utf-8``, XLS) or follows the name's
    suffix; ``application/gzip`` (no Content-Encoding) with ``gzip``. A destination without Jinja
    is the task's outlet (an Asset / Dataset); for a templated one, pass ``outlets=[...]`` yourself.

    :param callback_url: the export's callback URL (templated; the export operator's or
        ``ExportReadySensor``'s ``output``).
    :param followanalytics_conn_id: the FollowAnalytics connection (templated).
    :param gzip: compress on the fly into one gzip member.
    :param gzip_level: zlib compression level, 0-9 (default 6).
    :param download_attempts: downloads before giving up (default: the connection's ``max_retries`` + 1).
    :param deferrable: when the export is not ready yet (HTTP 202), wait in the triggerer
        (``ExportReadyTrigger``) and stream once it is, instead of failing. Default: the Airflow
        setting ``[operators] default_deferrable``.
    :param poll_interval: seconds between two checks while deferred (default 60).
    :param wait_timeout: seconds a deferred transfer waits for its export (default 24 hours).
    :param outlet_uri: the destination's URI when known at parse time: declared as an outlet.
    :param allow_empty: a CSV export with no data row (only its header) is written with a warning
        (default); ``False`` fails the task instead, before anything is written.
    """

    template_fields: Sequence[str] = ("callback_url", "followanalytics_conn_id")
    #: (module that must be importable, what to pip install), checked when the DAG is parsed.
    required_packages: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: (module, class, pip extra) of the provider hook the store is reached through, if any.
    store_hook_path: ClassVar[tuple[str, str, str] | None] = None

    def __init__(
        self,
        *,
        callback_url: str,
        followanalytics_conn_id: str = FollowAnalyticsHook.default_conn_name,
        gzip: bool = False,
        gzip_level: int = 6,
        download_attempts: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60.0,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        outlet_uri: str | None = None,
        allow_empty: bool = True,
        **kwargs: Any,
    ) -> None:
        for module, requirement in self.required_packages:
            require_provider(type(self).__name__, module, requirement)
        check_seconds("poll_interval", poll_interval)
        check_seconds("wait_timeout", wait_timeout)
        if "outlets" not in kwargs and outlet_uri is not None:
            kwargs["outlets"] = [lineage_uri_object(outlet_uri)]
        super().__init__(**kwargs)
        self.callback_url, self.followanalytics_conn_id, self.gzip = callback_url, followanalytics_conn_id, gzip
        self.gzip_level = check_int("gzip_level", gzip_level, 0, 9, "an integer from 0 to 9")
        if download_attempts is not None:
            check_int("download_attempts", download_attempts, 1, 1 << 20, "a positive integer (or None)")
        self.download_attempts, self.deferrable = download_attempts, deferrable
        self.poll_interval, self.wait_timeout = float(poll_interval), float(wait_timeout)
        self.allow_empty = allow_empty
        #: What was written, for lineage: the destination URL, or the ObjectStoragePath (its Azure account),
        #: and what the body held (columns, rows, size).
        self.written_to: Any = None
        self.export_content: Any = None

    def prepare(self) -> str:
        """Check the destination before anything is downloaded; return its URL (for logs, XCom, lineage)."""
        raise NotImplementedError

    def upload(self, reader: ExportReader) -> str:
        """Send every byte of ``reader``; return a note for the log. Raise on failure, leaving nothing behind."""
        raise NotImplementedError

    def check_stored_size(self, uri: str, stored: int | None, sent: int, delete: Any) -> None:
        """Fail (after ``delete()``) if the store holds another size than what was sent."""
        check_stored_size(uri, stored, sent, delete)

    @cached_property
    def hook(self) -> FollowAnalyticsHook:
        """The FollowAnalytics hook (one login for the whole task)."""
        return FollowAnalyticsHook(self.followanalytics_conn_id)

    @cached_property
    def store_hook_class(self) -> Any:
        """The provider hook class of :attr:`store_hook_path`, imported when the task runs."""
        module, name, extra = self.store_hook_path or ("", "", "")
        try:
            return getattr(importlib.import_module(module), name)
        except ImportError as exc:
            raise FollowAnalyticsError(
                f"{type(self).__name__} needs {module}: pip install '{PACKAGE}[{extra}]'"
            ) from exc

    def execute(self, context: Context) -> str:
        """Stream the ready export into the destination; defer first if it is not ready and ``deferrable``."""
        try:
            return self._transfer(context)
        except FollowAnalyticsExportNotReadyError:
            if not self.deferrable:
                raise
        defer_until_ready(
            self,
            self.hook.check_callback_url(self.callback_url),
            conn_id=self.followanalytics_conn_id,
            poll_interval=self.poll_interval,
            timeout=self.wait_timeout,
            max_consecutive_failures=DEFAULT_MAX_CONSECUTIVE_FAILURES,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after ExportReadyTrigger fired: stream the export, or fail with the event's message.

        :param event: the trigger's payload (``status`` ``ready``, ``error`` or ``timeout``).
        """
        resume_from_event(event, type(self).__name__, self._waited_too_long)
        return self._transfer(context)

    def _waited_too_long(self, message: str) -> Exception:
        return FollowAnalyticsError(
            f"{type(self).__name__} waited {self.wait_timeout:.0f}s for the export, which is still not ready: "
            f"{message}. Clear the export task to start a new one."
        )

    def _transfer(self, context: Context) -> str:
        if self.store_hook_path is not None:
            self.store_hook_class  # noqa: B018 - a missing provider says what to install, before anything else
        callback_url = self.hook.check_callback_url(self.callback_url)  # before any request; masks the token
        uri = self.prepare()
        from airflow_provider_followanalytics.transfers._lineage import lineage_wanted

        reader = transfer_export(
            self.hook,
            callback_url,
            uri,
            self.upload,
            attempts=self.download_attempts or self.hook.settings.max_retries + 1,
            log=self.log,
            gzip_level=self.gzip_level if self.gzip else None,
            allow_empty=self.allow_empty,
            count_rows=lineage_wanted(),
        )
        self.export_content = reader.content
        if self.written_to is None:
            self.written_to = uri
        persist_destination_link(context, self, uri, self.written_to)  # the UI's link to the object
        return uri

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the export in (API host and path, no token), the object out; None without the provider."""
        from airflow_provider_followanalytics.transfers._lineage import lineage_of

        return lineage_of(self.callback_url, self.written_to, content=self.export_content)
