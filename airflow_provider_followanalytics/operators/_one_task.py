"""What an export operator does beyond starting the export: resume on retry, and the one-task form (internal).

Durable on retry (Airflow 3.3+, ``task_state_store``): the callback URL of the export a task started
is kept in the task's durable state; a retry (or a clear) in the same run asks it first. 202 or 200:
the export is still good and is reused, no new export request. 400 (expired) or nothing kept: a new
export. Before 3.3 a retry starts a new export.

The one-task form (``destination=``): check the destination, start (or reuse) the export, wait
(deferred on ``ExportReadyTrigger``, or polling in the worker), stream it into the destination with
the transfers' guarantees, and return the destination's URL. README *One task from export to lake*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsError, FollowAnalyticsExportExpiredError
from airflow_provider_followanalytics.hooks._destination import ObjectStorageDestination
from airflow_provider_followanalytics.hooks._export_reader import transfer_export
from airflow_provider_followanalytics.links import persist_destination_link
from airflow_provider_followanalytics.triggers._waiting import (
    FailureBudget,
    check_export_once,
    defer_until_ready,
    resume_from_event,
    wait_in_worker,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

#: The key of the started export's callback URL in the task's durable state (renaming it breaks
#: the retries of tasks in flight).
STATE_KEY = "followanalytics_callback_url"
#: The XCom key of the callback URL a one-task export waits on (read back when it resumes).
CALLBACK_XCOM_KEY = "callback_url"


def start_or_reuse(operator: Any, context: Any, hook: FollowAnalyticsHook, start: Callable[[], str]) -> str:
    """The callback URL of this try's export: the one an earlier try started if it is still good, else a new one.

    :param start: starts a new export and returns its callback URL.
    """
    store = context.get("task_state_store")  # Airflow 3.3+: the task's durable state
    if store is None:
        return start()
    kept = store.get(STATE_KEY)
    if isinstance(kept, str) and kept:
        url = hook.check_callback_url(kept)  # masks its token before anything could log it
        try:
            status = hook.get_export_status(url)
        except FollowAnalyticsExportExpiredError:
            operator.log.info("The export an earlier try started has expired (HTTP 400); starting a new one")
        else:
            operator.log.info(
                "Reusing the export an earlier try started (%s, %s); no new export request",
                redact_url(url),
                "ready" if status == "ready" else "not ready yet",
            )
            return url
    url = start()
    store.set(STATE_KEY, url)
    return url


class OneTask:
    """The steps of the one-task form, for an export operator with ``destination`` set.

    :param operator: the export operator (its one-task arguments, ``log``, ``defer``).
    :param hook: the FollowAnalytics hook of the task.
    """

    def __init__(self, operator: Any, hook: FollowAnalyticsHook) -> None:
        self.operator, self.hook = operator, hook
        self.destination = ObjectStorageDestination(
            operator.destination,
            operator.destination_conn_id,
            replace=operator.replace,
            block_size=operator.block_size,
            content_type=operator.content_type,
            gzip=operator.gzip,
            log=operator.log,
        )

    def check_destination(self) -> str:
        """Check the destination before any FollowAnalytics request; return its URL."""
        return self.destination.check()

    def wait_then_write(self, context: Any, callback_url: str) -> str:
        """Wait for the export (deferring if deferrable) and stream it into the destination."""
        operator = self.operator
        budget = FailureBudget(operator.max_consecutive_failures)
        if operator.deferrable:
            if not check_export_once(self.hook, callback_url, budget, operator.log, operator.poll_interval):
                context["ti"].xcom_push(key=CALLBACK_XCOM_KEY, value=callback_url)
                defer_until_ready(
                    operator,
                    callback_url,
                    conn_id=self.hook.followanalytics_conn_id,
                    poll_interval=operator.poll_interval,
                    timeout=operator.wait_timeout,
                    max_consecutive_failures=operator.max_consecutive_failures,
                )
        else:
            wait_in_worker(
                self.hook,
                callback_url,
                poll_interval=operator.poll_interval,
                timeout=operator.wait_timeout,
                budget=budget,
                log=operator.log,
            )
        return self.write(context, callback_url)

    def resume(self, context: Any, event: object) -> str:
        """After the trigger fired: check the destination again (time passed), then stream the export."""
        operator = self.operator
        resume_from_event(event, type(operator).__name__, self._waited_too_long)
        kept = context["ti"].xcom_pull(task_ids=operator.task_id, key=CALLBACK_XCOM_KEY)
        callback_url = operator.callback_url = self.hook.check_callback_url(kept)
        self.check_destination()
        return self.write(context, callback_url)

    def write(self, context: Any, callback_url: str) -> str:
        """Stream the ready export into the checked destination, keep the UI's link to it; return its URL."""
        operator = self.operator
        from airflow_provider_followanalytics.transfers._lineage import lineage_wanted

        reader = transfer_export(
            self.hook,
            callback_url,
            self.destination.uri,
            self.destination.write,
            attempts=operator.download_attempts or self.hook.settings.max_retries + 1,
            log=operator.log,
            gzip_level=operator.gzip_level if operator.gzip else None,
            allow_empty=operator.allow_empty,
            count_rows=lineage_wanted(),
        )
        operator.written_to = self.destination.path  # lineage reads the Azure account from the path
        operator.export_content = reader.content
        persist_destination_link(context, operator, self.destination.uri, self.destination.path)
        return self.destination.uri

    def _waited_too_long(self, message: str) -> Exception:
        return FollowAnalyticsError(
            f"{type(self.operator).__name__} waited {self.operator.wait_timeout:.0f}s for the export, which is "
            f"still not ready: {message}."
        )
