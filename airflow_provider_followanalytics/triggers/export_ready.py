"""ExportReadyTrigger: wait for a FollowAnalytics export in the triggerer, not on a worker.

It shares the triggerer's event loop with thousands of triggers, so nothing blocks: aiohttp (one
session per loop and one login per account, see ``hooks/_async_client.py``), async connection lookup and
``asyncio.sleep``. It fires one small event and stops.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_followanalytics import DEFAULT_CONN_ID, _metrics
from airflow_provider_followanalytics._api import backoff_delay
from airflow_provider_followanalytics._checks import check_failure_budget, check_seconds, is_number
from airflow_provider_followanalytics._events import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    EVENT_STATUSES,
    REASON_INTERNAL,
    REASON_OF_EXCEPTION,
    REASON_UNAVAILABLE,
    STATUS_ERROR,
    STATUS_READY,
    STATUS_TIMEOUT,
    FailureBudget,
)
from airflow_provider_followanalytics._urls import export_token_of, redact_text, redact_url
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
    FollowAnalyticsRetryableError,
)

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline_scope
else:  # aiohttp depends on async-timeout before 3.11
    from async_timeout import timeout as deadline_scope

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

#: Longest single backoff wait, unless the poll interval itself is longer.
MAX_BACKOFF_SECONDS = 600.0
#: Each wait between two polls of a pending export is stretched by a random 0 to 10 %: waits
#: that started together (a triggerer restart, a burst of DAG runs) drift apart instead of
#: polling in lock-step forever, and the API never sees more than one poll per interval.
POLL_JITTER = 0.1
#: Event messages are cut to this length so that an event stays well under 1 KiB.
MAX_MESSAGE_CHARS = 400


class ExportReadyTrigger(BaseTrigger):
    """Poll a FollowAnalytics callback URL until the export is ready, from the triggerer.

    ``202``: sleep ``poll_interval`` plus 0-10 % jitter (never past ``deadline``) and poll again;
    ``200``: ready (closed unread); ``400``: an ``error`` event at once; ``429``/``5xx``/network
    errors: exponential backoff with jitter, never sooner than ``poll_interval`` or
    ``Retry-After``, and an ``error`` event after ``max_consecutive_failures`` in a row; ``401``:
    one new login. It fires one event, ``{"status": "ready" | "error" | "timeout",
    "callback_url": <redacted>, "message": ..., "reason": ...}`` (the reasons are in
    ``_events.py``); no event carries the export token. Usually built by
    :class:`~airflow_provider_followanalytics.sensors.export_ready.ExportReadySensor`.

    Metrics: ``followanalytics.export_ready_latency`` (``waiter=triggerer``) is the time from this run's
    first poll to the poll that answered ready, on the triggerer's monotonic clock (a triggerer restart
    starts it again; the check the task made before deferring is not in it), and each failed poll that
    is retried counts in ``followanalytics.http_retries`` by ``cause``. Pending polls send nothing.

    :param callback_url: the export's callback URL (it must be on the connection's host).
    :param followanalytics_conn_id: the Airflow connection of the account that started the export.
    :param poll_interval: seconds between two polls of a pending export.
    :param deadline: absolute wall-clock time (seconds since the epoch) at which to stop with a
        ``timeout`` event (absolute, so a trigger rebuilt after a triggerer restart keeps it);
        ``None`` waits until the export is ready or fails.
    :param max_consecutive_failures: failed polls in a row (transient errors) before an ``error`` event.
    """

    def __init__(
        self,
        callback_url: str,
        followanalytics_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        deadline: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        super().__init__()
        check_seconds("poll_interval", poll_interval)
        if deadline is not None and not is_number(deadline):
            raise FollowAnalyticsConfigError(
                f"deadline={deadline!r} must be an absolute time in seconds since the epoch, or None."
            )
        check_failure_budget(max_consecutive_failures)
        self.callback_url = callback_url
        self.followanalytics_conn_id = followanalytics_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_consecutive_failures = max_consecutive_failures
        self._polls = 0  # polls of the current run(), for its events

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and JSON-only kwargs that rebuild this trigger (no auth token)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "callback_url": self.callback_url,
                "followanalytics_conn_id": self.followanalytics_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_failures": self.max_consecutive_failures,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until ready, failed or past the deadline; yield one event.

        The hook is closed (releasing the shared aiohttp session) before the event is yielded,
        and also when the triggerer cancels the trigger mid-wait.
        """
        payload = await self._wait()
        yield TriggerEvent(payload)

    def __repr__(self) -> str:
        # Airflow's triggerer logs repr(trigger) when it starts one (into the task log on 2.x):
        # the default repr lists the kwargs, export token included.
        return (
            f"<{type(self).__module__}.{type(self).__qualname__} callback_url={redact_url(str(self.callback_url))} "
            f"followanalytics_conn_id={self.followanalytics_conn_id} poll_interval={self.poll_interval} "
            f"deadline={self.deadline}>"
        )

    def _event(self, status: str, message: str, reason: str | None = None) -> dict[str, Any]:
        # No raw callback URL: the triggerer logs every event into the task log, and the task
        # that resumes knows its own URL. The redacted one is for display.
        event: dict[str, Any] = {
            "status": status,
            "callback_url": redact_url(str(self.callback_url)),
            "message": _clip(redact_url(message)),
        }
        if reason is not None:
            event["reason"] = reason
        return event

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    async def _wait(self) -> dict[str, Any]:
        from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

        shown = redact_url(str(self.callback_url))
        hook = FollowAnalyticsHook(self.followanalytics_conn_id)
        try:
            self.log.info("Waiting for the FollowAnalytics export at %s", shown)
            return await self._poll_until_done(hook, shown)
        except Exception as exc:  # never let the trigger die silently: report it as an event
            secrets = (export_token_of(str(self.callback_url)), await _password_of(hook))
            reason = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            # The redacted text only: a raw traceback could quote the export token.
            self.log.error("ExportReadyTrigger failed unexpectedly for %s: %s", shown, reason)
            return self._event(
                STATUS_ERROR, f"Unexpected error while waiting for the export: {reason}", REASON_INTERNAL
            )
        finally:
            await hook.aclose()

    async def _poll_until_done(self, hook: FollowAnalyticsHook, shown: str) -> dict[str, Any]:
        self._polls = 0
        remaining = self._remaining()
        try:
            # One deadline scope for the whole wait, so that a slow answer cannot carry it past the
            # deadline either. Not one per poll: each scope's timer, cancelled, stays in the loop's heap
            # long enough to reach the oldest GC generation, and with thousands of waits that brings
            # full collections of the triggerer's whole heap sooner. Not asyncio.wait_for: before
            # Python 3.12 it swallows a cancel that meets a finished poll, and a trigger the triggerer
            # cancelled (restart, rebalancing) would keep polling until its deadline.
            async with deadline_scope(remaining):
                return await self._poll(hook, shown)
        except asyncio.TimeoutError:
            if remaining is None:
                raise  # not our deadline (the hook turns its own timeouts into RetryableError)
            return self._timeout_event()

    async def _poll(self, hook: FollowAnalyticsHook, shown: str) -> dict[str, Any]:
        budget = FailureBudget(self.max_consecutive_failures, "poll")
        first_poll = time.monotonic()
        while True:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return self._timeout_event()
            self._polls += 1
            try:
                status = await hook.aget_export_status(self.callback_url)
            except FollowAnalyticsRetryableError as exc:
                give_up = budget.spend(exc)
                if give_up is not None:
                    return self._event(STATUS_ERROR, give_up, REASON_UNAVAILABLE)
                delay = self._backoff(budget.failures, exc.retry_after)
                _metrics.http_retry(_retry_cause(exc), "async")
                self.log.warning(
                    "Polling %s failed (%d/%d in a row): %s; next poll in %.2fs",
                    shown,
                    budget.failures,
                    budget.limit,
                    exc,
                    delay,
                )
            except FollowAnalyticsError as exc:  # a dead link, a refused login, a bad URL, an odd answer
                return self._event(STATUS_ERROR, str(exc), _reason_of(exc))
            else:
                budget.restore()
                if status == "ready":
                    _metrics.export_ready(time.monotonic() - first_poll, "triggerer")
                    self.log.info("FollowAnalytics export at %s is ready after %d poll(s)", shown, self._polls)
                    return self._event(STATUS_READY, f"The export is ready (after {self._polls} poll(s)).")
                delay = self._pending_delay()
            remaining = self._remaining()
            await asyncio.sleep(delay if remaining is None else max(0.0, min(delay, remaining)))

    def _pending_delay(self) -> float:
        return self.poll_interval * (1.0 + POLL_JITTER * random.random())  # jitter, not security

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        # poll_interval * 2**failures with jitter in [50%, 100%]: a failing server is never polled
        # sooner than a healthy one, and never before the Retry-After it asked for.
        cap = max(self.poll_interval, MAX_BACKOFF_SECONDS)
        delay = max(self.poll_interval, backoff_delay(failures, self.poll_interval, cap))
        return delay if retry_after is None else max(delay, retry_after)

    def _timeout_event(self) -> dict[str, Any]:
        return self._event(
            STATUS_TIMEOUT,
            f"The export was not ready by the deadline ({self._polls} poll(s) made).",
        )


async def _password_of(hook: FollowAnalyticsHook) -> str | None:
    # For redacting an unexpected error's text; the connection may itself be what failed.
    try:
        return (await hook.aget_settings()).password
    except Exception:
        return None


def _retry_cause(exc: FollowAnalyticsRetryableError) -> str:
    # No answer: the aiohttp error the async client turned into this one is its context.
    return _metrics.retry_cause(exc.http_status, isinstance(exc.__context__, TimeoutError))


def _reason_of(exc: FollowAnalyticsError) -> str:
    return next(reason for exc_type, reason in REASON_OF_EXCEPTION if isinstance(exc, exc_type))


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 3] + "..."


__all__ = ["DEFAULT_MAX_CONSECUTIVE_FAILURES", "EVENT_STATUSES", "ExportReadyTrigger"]
