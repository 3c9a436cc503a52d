"""The event that ExportReadyTrigger fires, defined once for the trigger and its consumers.

The sensor (and any transfer that defers) resumes with this event and turns an ``error`` back
into the exception its own poke mode would raise, so both modes fail, retry and skip alike.
The event is logged by Airflow's triggerer into the task log: it carries a redacted URL for
display, never the export token (each consumer knows its own callback URL).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsAuthError,
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
    FollowAnalyticsExportExpiredError,
    FollowAnalyticsRetryableError,
)

#: Consecutive failed polls (network errors, timeouts, 429, 5xx) tolerated before giving up.
#: With the trigger's backoff (2, 4, 8, 16 poll intervals, jittered down to half) that is 15 to
#: 30 poll intervals of unbroken outage: long enough to ride out a deploy or a rate-limit burst,
#: short enough that a real outage fails the task (and its retries take over).
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5


class FailureBudget:
    """Transient failures (network, timeouts, 429, 5xx) in a row that a wait tolerates.

    :param limit: failures in a row after which the wait gives up (``max_consecutive_failures``).
    :param what: the noun for one attempt in messages (``"check"``, ``"poll"``).
    """

    def __init__(self, limit: int = DEFAULT_MAX_CONSECUTIVE_FAILURES, what: str = "check") -> None:
        self.limit, self.what, self.failures = limit, what, 0

    def spend(self, exc: Exception) -> str | None:
        """Count one failure; return the give-up message once the budget is spent, else None."""
        self.failures += 1
        if self.failures < self.limit:
            return None
        return f"Gave up after {self.failures} consecutive failed {self.what}s; last: {exc}"

    def restore(self) -> None:
        """A successful attempt: the next failure counts from one again."""
        self.failures = 0


STATUS_READY = "ready"
STATUS_ERROR = "error"
STATUS_TIMEOUT = "timeout"
EVENT_STATUSES = (STATUS_READY, STATUS_ERROR, STATUS_TIMEOUT)

#: Why an ``error`` event was sent (its ``reason``), and what the consumer raises for it.
REASON_EXPIRED = "expired"  # HTTP 400: the link is missing, invalid or expired; retrying cannot help
REASON_AUTH = "auth"  # the login was refused
REASON_UNAVAILABLE = "unavailable"  # the failure budget ran out on transient errors
REASON_CONFIG = "config"  # bad connection or callback URL (e.g. another host): nothing was sent
REASON_API = "api"  # any other unexpected answer of the API
REASON_INTERNAL = "internal"  # an unexpected exception

_EXCEPTION_OF_REASON: dict[str, type[FollowAnalyticsError]] = {
    REASON_EXPIRED: FollowAnalyticsExportExpiredError,
    REASON_AUTH: FollowAnalyticsAuthError,
    REASON_UNAVAILABLE: FollowAnalyticsRetryableError,
    REASON_CONFIG: FollowAnalyticsConfigError,
    REASON_API: FollowAnalyticsAPIError,
    REASON_INTERNAL: FollowAnalyticsAPIError,
}

#: The exceptions each reason maps to, for a trigger that must classify what its hook raised
#: (most specific first: an expired link is also an API error).
REASON_OF_EXCEPTION: tuple[tuple[type[FollowAnalyticsError], str], ...] = (
    (FollowAnalyticsExportExpiredError, REASON_EXPIRED),
    (FollowAnalyticsAuthError, REASON_AUTH),
    (FollowAnalyticsConfigError, REASON_CONFIG),
    (FollowAnalyticsError, REASON_API),
)


def error_for_event(event: dict[str, Any], message: str) -> FollowAnalyticsError:
    """The exception to raise for an ``error`` event: the same type poke mode raises.

    :param event: the trigger's event (``status`` ``error``).
    :param message: the text of the exception (already redacted).
    """
    exception_type = _EXCEPTION_OF_REASON.get(str(event.get("reason")), FollowAnalyticsAPIError)
    if exception_type is FollowAnalyticsConfigError:
        return FollowAnalyticsConfigError(message)
    status = 400 if exception_type is FollowAnalyticsExportExpiredError else None
    return exception_type(message, http_status=status)  # type: ignore[call-arg]


def check_event(event: object, consumer: str) -> dict[str, Any]:
    """Return ``event`` if it is a dict with a known status; raise a clear error otherwise.

    :param event: what the task resumed with.
    :param consumer: the class name of the resuming task, for the message.
    """
    if not isinstance(event, dict):
        raise FollowAnalyticsError(
            f"{consumer} resumed with an event of type {type(event).__name__}; expected the "
            "dict that ExportReadyTrigger sends. Treating it as a failure."
        )
    if event.get("status") not in EVENT_STATUSES:
        raise FollowAnalyticsError(
            f"{consumer} resumed with an event whose status is {event.get('status')!r}; expected 'ready', "
            "'error' or 'timeout'. Treating it as a failure."
        )
    return event
