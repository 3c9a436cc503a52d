"""The wait-and-resume protocol, written once for every task that waits for an export (internal).

The sensor, the deferrable transfers and the one-task exports all wait the same way: check on the
worker, or defer on :class:`ExportReadyTrigger` with a deadline and Airflow's own timeout a grace
period later (a safety net, e.g. no triggerer running: the trigger's deadline fires first with the
clearer message), then resume from the trigger's event, validated, turning an ``error`` back into
the exception a check on the worker raises. Transient failures are counted against one budget
(``_events.FailureBudget``, shared with the trigger).
README "Waiting" tells the whole story.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_followanalytics import _metrics
from airflow_provider_followanalytics._events import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    STATUS_ERROR,
    STATUS_READY,
    FailureBudget,
    check_event,
    error_for_event,
)
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsError, FollowAnalyticsRetryableError

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

#: How long a task waits for its export: a daily export that is not ready within a day will not be
#: by the next run.
DEFAULT_WAIT_TIMEOUT = 24 * 60 * 60.0
#: Airflow's deferral timeout is the wait's own plus this (or two poll intervals, if longer).
DEFER_TIMEOUT_GRACE = 60.0
#: A wait in the worker says how long it has waited at most this often (seconds).
WAIT_PROGRESS_INTERVAL = 60.0

__all__ = [
    "DEFAULT_MAX_CONSECUTIVE_FAILURES",
    "DEFAULT_WAIT_TIMEOUT",
    "DEFER_TIMEOUT_GRACE",
    "FailureBudget",
    "check_export_once",
    "defer_until_ready",
    "resume_from_event",
    "wait_in_worker",
]


def check_export_once(
    hook: FollowAnalyticsHook,
    callback_url: str,
    budget: FailureBudget,
    log: logging.Logger | Any,
    retry_in: float,
    *,
    quiet: bool = False,
) -> bool:
    """Check the export once on the worker: True when ready, False when pending or failed within budget.

    :param quiet: say "not ready yet" at debug level only (a wait that reports its own progress).

    :raises FollowAnalyticsRetryableError: when this failure spends the budget.
    :raises FollowAnalyticsError: at once for a dead link (400), a refused login or a bad URL.
    """
    try:
        status = hook.get_export_status(callback_url)
    except FollowAnalyticsRetryableError as exc:
        give_up = budget.spend(exc)
        if give_up is not None:
            raise FollowAnalyticsRetryableError(
                give_up, http_status=exc.http_status, server_message=exc.server_message
            ) from None
        log.warning(
            "Export check failed (%d/%d in a row), checking again in %ss: %s",
            budget.failures,
            budget.limit,
            retry_in,
            exc,
        )
        return False
    budget.restore()
    if status == "ready":
        log.info("The FollowAnalytics export is ready")
        return True
    (log.debug if quiet else log.info)("The FollowAnalytics export is not ready yet (HTTP 202)")
    return False


def wait_in_worker(
    hook: FollowAnalyticsHook,
    callback_url: str,
    *,
    poll_interval: float,
    timeout: float,
    budget: FailureBudget,
    log: logging.Logger | Any,
) -> None:
    """Wait on the worker (a task that is not deferrable) until the export is ready.

    Metric ``followanalytics.export_ready_latency`` (``waiter=worker``): the time from the first check of
    this call to the check that saw the export ready, on the worker's monotonic clock.

    :raises FollowAnalyticsError: after ``timeout`` seconds, or as :func:`check_export_once` raises.
    """
    started = time.monotonic()
    deadline, next_line, checks = started + timeout, started, 0
    while not check_export_once(hook, callback_url, budget, log, poll_interval, quiet=checks > 0):
        checks += 1
        now = time.monotonic()
        if now >= next_line:  # the first pending check, then at most once a WAIT_PROGRESS_INTERVAL
            next_line = now + WAIT_PROGRESS_INTERVAL
            log.info(
                "Waiting in the worker for the FollowAnalytics export: %d check(s) in %.0fs so far, one every %gs "
                "(wait_timeout %.0fs)",
                checks,
                now - started,
                poll_interval,
                timeout,
            )
        if now + poll_interval > deadline:
            raise FollowAnalyticsError(
                f"The export at {redact_url(callback_url)} was not ready within {timeout:.0f}s (wait_timeout)."
            )
        time.sleep(poll_interval)
    _metrics.export_ready(time.monotonic() - started, "worker")


def defer_until_ready(
    task: Any,
    callback_url: str,
    *,
    conn_id: str,
    poll_interval: float,
    timeout: float,
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    started: float | None = None,
    method_name: str = "execute_complete",
) -> NoReturn:
    """Defer ``task`` on :class:`ExportReadyTrigger` until the export is ready or ``timeout`` passed.

    :param task: the operator that waits (its ``defer`` and ``log`` are used).
    :param callback_url: the checked callback URL (only its redacted form is logged).
    :param timeout: seconds to wait, counted from ``started`` (``time.time()``; default: now).
    :param method_name: the task's method that resumes with the trigger's event.
    """
    from airflow_provider_followanalytics.triggers.export_ready import ExportReadyTrigger

    task.log.info(
        "Export at %s not ready; deferring to the triggerer (poll every %ss, timeout %ss)",
        redact_url(callback_url),
        poll_interval,
        timeout,
    )
    trigger = ExportReadyTrigger(
        callback_url=callback_url,
        followanalytics_conn_id=conn_id,
        poll_interval=poll_interval,
        deadline=(time.time() if started is None else started) + timeout,
        max_consecutive_failures=max_consecutive_failures,
    )
    grace = max(DEFER_TIMEOUT_GRACE, 2 * poll_interval)
    task.defer(trigger=trigger, method_name=method_name, timeout=timedelta(seconds=timeout + grace))
    raise AssertionError("unreachable: defer() raises")  # pragma: no cover


def resume_from_event(event: object, consumer: str, on_timeout: Callable[[str], Exception]) -> None:
    """Return if the trigger's ``event`` says ready; raise what a check on the worker would raise otherwise.

    :param consumer: the resuming task's class name, for the message of a malformed event.
    :param on_timeout: builds the exception of a ``timeout`` event from its (redacted) message.
    """
    checked = check_event(event, consumer)
    if checked["status"] == STATUS_READY:
        return
    message = redact_url(str(checked.get("message") or "no message"))
    if checked["status"] == STATUS_ERROR:
        raise error_for_event(checked, f"Waiting for the FollowAnalytics export failed: {message}")
    raise on_timeout(message)
