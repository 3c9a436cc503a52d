"""ExportReadySensor: wait until a FollowAnalytics export can be downloaded, on a worker or deferred."""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics import DEFAULT_CONN_ID, _metrics
from airflow_provider_followanalytics._checks import check_failure_budget, check_seconds
from airflow_provider_followanalytics._compat import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    conf,
)
from airflow_provider_followanalytics._rendering import MasksCallbackUrl
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.exceptions import (
    ExportLinkExpiredError,
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
)
from airflow_provider_followanalytics.triggers._waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_WAIT_TIMEOUT,
    FailureBudget,
    check_export_once,
    defer_until_ready,
    resume_from_event,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta

    from airflow.sdk import Context  # type hints only (Airflow 2 has the same mapping type)

    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

#: Default ``timeout`` (the one wait timeout of every task that waits for an export).
DEFAULT_TIMEOUT = DEFAULT_WAIT_TIMEOUT


class ExportReadySensor(MasksCallbackUrl, BaseSensorOperator):
    """Wait until a FollowAnalytics export is ready, and return its callback URL.

    Each check is one ``GET`` of the callback URL: ``202`` is not ready, ``200`` is ready (closed
    unread), ``400`` (missing, invalid or expired link) fails the task at once without task
    retries: clear the export task to get a new link. A callback URL on another host than the
    connection's is refused before any request. Transient failures (network, timeouts, 429, 5xx)
    are retried; ``max_consecutive_failures`` of them in a row fail the task, so that an outage
    ends in a failure task retries can pick up. README "Waiting" tells the whole story.

    .. code-block:: python

        ready = ExportReadySensor(task_id="wait", callback_url=start.output, deferrable=True, timeout=6 * 3600)
        # ready.output is the callback URL again, for FollowAnalyticsToS3Operator(callback_url=ready.output, ...)

    :param callback_url: the callback URL of the export (templated; usually ``start.output``).
    :param followanalytics_conn_id: the connection of the account that started the export (templated).
    :param deferrable: check once on the worker, then wait in the triggerer
        (:class:`~airflow_provider_followanalytics.triggers.export_ready.ExportReadyTrigger`) without
        holding a worker slot. Default: ``[operators] default_deferrable``.
    :param poke_interval: seconds between two checks in poke mode.
    :param timeout: seconds to wait before failing (default 24 hours; no task retries, as for every
        sensor).
    :param poll_interval: seconds between two checks in deferrable mode (default: ``poke_interval``).
    :param max_consecutive_failures: failed checks in a row tolerated before the task fails
        (default 5). The trigger counts afresh after the check made before deferring; with
        ``mode="reschedule"`` every check is a new process, so the count never builds up.
    :param soft_fail: skip the task instead of failing it when the wait fails or times out.
    :return: the callback URL (the ``return_value`` XCom) once the export is ready.

    Metric ``followanalytics.export_ready_latency`` (``waiter=worker``) in poke mode: the time from
    this task run's first poke to the poke that saw the export ready, on the worker's monotonic
    clock. Not sent in reschedule mode (each poke is another run) nor by the check a deferrable
    sensor makes before deferring (the trigger times its own wait).
    """

    template_fields: Sequence[str] = ("callback_url", "followanalytics_conn_id")
    ui_color = "#d8ecf9"

    def __init__(
        self,
        *,
        callback_url: str,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float | None = DEFAULT_TIMEOUT,
        poll_interval: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.callback_url = callback_url
        self.followanalytics_conn_id = followanalytics_conn_id
        self.deferrable = deferrable
        if poll_interval is not None:  # poke_interval is Airflow's to check
            check_seconds("poll_interval", poll_interval, allow_zero=True)
        effective_poll = self.poke_interval if poll_interval is None else poll_interval
        if deferrable and effective_poll == 0:
            raise FollowAnalyticsConfigError(
                "A deferrable ExportReadySensor needs poll_interval (or poke_interval) > 0, "
                "or the trigger would poll the API without pause."
            )
        self.poll_interval = float(effective_poll)
        check_failure_budget(max_consecutive_failures)
        self.max_consecutive_failures = max_consecutive_failures
        self._budget = FailureBudget(max_consecutive_failures)
        self._first_poke: float | None = None

    @cached_property
    def hook(self) -> FollowAnalyticsHook:
        """The hook of ``followanalytics_conn_id`` (one login for all checks of this task run)."""
        from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

        return FollowAnalyticsHook(self.followanalytics_conn_id)

    def execute(self, context: Context) -> str:
        """Wait for the export and return its callback URL (see the class docstring)."""
        # Refuse a callback URL on another host before anything is sent; masks its token in logs.
        url = self.hook.check_callback_url(self.callback_url)
        started = time.time()  # the deadline counts from here, the worker's check included
        try:
            if not self.deferrable:
                self.log.info("Waiting for the FollowAnalytics export at %s (poke mode)", redact_url(url))
                super().execute(context)
                return url
            # One check on the worker: an export that is already ready (or dead) needs no triggerer.
            if self._check():
                return url
        except FollowAnalyticsError as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping (soft_fail=True): {exc}") from exc
            raise
        defer_until_ready(
            self,
            url,
            conn_id=self.followanalytics_conn_id,
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            max_consecutive_failures=self.max_consecutive_failures,
            started=started,
        )

    def poke(self, context: Context) -> bool:
        """Check the export once (poke mode); True when it is ready."""
        if self._first_poke is None:
            self._first_poke = time.monotonic()
        ready = self._check()
        if ready and not self.reschedule:
            _metrics.export_ready(time.monotonic() - self._first_poke, "worker")
        return ready

    def _check(self) -> bool:
        return check_export_once(self.hook, self.callback_url, self._budget, self.log, self.poke_interval)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger fired: return the callback URL, or fail with the event's message.

        :param event: the trigger's payload, ``{"status": "ready" | "error" | "timeout",
            "callback_url": ..., "message": ..., "reason": ...}``.
        """
        resume_from_event(event, type(self).__name__, self._timed_out)
        url = self.hook.check_callback_url(self.callback_url)  # masks the token in this process too
        # The event's own message ("The export is ready (after N poll(s)).") is in the log already.
        self.log.info("The FollowAnalytics export at %s is ready", redact_url(url))
        return url

    def _timed_out(self, message: str) -> Exception:
        text = f"ExportReadySensor timed out after {self.timeout}s: {message}"
        return AirflowSkipException(text) if self.soft_fail else AirflowSensorTimeout(text)


__all__ = ["ExportLinkExpiredError", "ExportReadySensor"]
