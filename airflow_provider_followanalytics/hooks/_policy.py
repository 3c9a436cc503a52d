"""The request policy of both FollowAnalytics clients: the sync hook and the triggerer's async client.

One table says what each answer means (:func:`classify`); the same rules turn a transport
failure into an error (:func:`transport_failure`: TLS errors are final, network errors and
timeouts transient) and refuse redirects (:func:`redirect_error`). The sync client retries with
the ``tenacity`` loop of :meth:`RequestPolicy.retrying`; the async client makes one attempt per
call and leaves the next poll to the trigger, which reads ``FollowAnalyticsRetryableError.retry_after``.
What a response body means (the envelope, the callback's 400, a refused login) is read by
``_api.py``, the protocol module both clients share.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._api import backoff_delay, is_retryable_status, parse_retry_after, tls_error
from airflow_provider_followanalytics._urls import redact_text, redact_url
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsError,
    FollowAnalyticsRetryableError,
)

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping

    import tenacity

    from airflow_provider_followanalytics._api import ConnectionSettings, Secrets

#: A token that the server rejects this way has expired: log in again once and replay (the API
#: answers 403 as well as 401 to a stale token).
RELOGIN_STATUSES = frozenset({401, 403})


class Outcome(enum.Enum):
    """What a client does with an HTTP status."""

    ANSWER = "answer"  # hand the response to the caller (2xx, and 4xx errors to report)
    RELOGIN = "relogin"  # log in again once and replay the request
    RETRY = "retry"  # transient: 429 and 5xx
    REDIRECT = "redirect"  # refused: never carry the token to wherever a redirect points


def classify(status: int, *, may_relogin: bool) -> Outcome:
    """The one status table of both clients.

    :param status: the HTTP status of the answer.
    :param may_relogin: the request carried a token and has not been replayed after a re-login yet.
    """
    if status in RELOGIN_STATUSES and may_relogin:
        return Outcome.RELOGIN
    if is_retryable_status(status):
        return Outcome.RETRY
    if 300 <= status < 400:
        return Outcome.REDIRECT
    return Outcome.ANSWER


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """The seconds an answer's ``Retry-After`` header asks to wait, if it says."""
    return parse_retry_after(headers.get("Retry-After"))


def redirect_error(what: str, status: int, location: str | None) -> FollowAnalyticsAPIError:
    """The error for a redirect, naming where it pointed (export tokens hidden)."""
    return FollowAnalyticsAPIError(
        f"FollowAnalytics {what} answered a redirect (HTTP {status}) to {redact_url(location or '?')}; "
        "redirects are not followed so credentials stay on the connection's host.",
        http_status=status,
    )


def transport_failure(
    what: str, exc: BaseException, *, tls: bool, base_url: str, secrets: Secrets, attempts: int | None = None
) -> FollowAnalyticsError:
    """The error for a request that got no answer.

    :param what: the request, for the message.
    :param exc: the HTTP library's exception.
    :param tls: the TLS handshake failed: not retried, since the same handshake fails again.
    :param base_url: the connection's API base URL (named in TLS hints).
    :param secrets: values to hide if the library's text quotes them.
    :param attempts: how many attempts were made, for the message (sync client).
    """
    reason = redact_text(f"{type(exc).__name__}: {exc}", secrets)
    if tls:
        return tls_error(what, base_url, reason)
    after = "" if attempts is None else f" after {attempts} attempt(s)"
    return FollowAnalyticsRetryableError(f"FollowAnalytics {what} failed{after}: {reason}")


@dataclass(frozen=True)
class RequestPolicy:
    """Retries of the sync client: how many, how long to wait, and when to give up at once.

    Network errors, timeouts, 429 and 5xx are retried up to ``max_retries`` times, waiting
    ``retry_delay * 2**n`` (capped at ``max_retry_delay``, jitter in [50%, 100%]) or the server's
    ``Retry-After``; a ``Retry-After`` longer than ``max_retry_delay`` fails at once.

    :param max_retries: retries after the first attempt.
    :param retry_delay: base of the exponential backoff, in seconds.
    :param max_retry_delay: longest single wait, and the longest ``Retry-After`` honoured.
    """

    max_retries: int
    retry_delay: float
    max_retry_delay: float

    @classmethod
    def of(cls, settings: ConnectionSettings) -> RequestPolicy:
        """The policy of a connection's settings."""
        return cls(settings.max_retries, settings.retry_delay, settings.max_retry_delay)

    def wait(self, state: tenacity.RetryCallState) -> float:
        """Seconds before retry ``state.attempt_number`` (tenacity ``wait``)."""
        outcome = state.outcome
        retry_after = None if outcome is None or outcome.failed else retry_after_of(outcome.result().headers)
        return backoff_delay(state.attempt_number - 1, self.retry_delay, self.max_retry_delay, retry_after)

    def retrying(
        self,
        what: str,
        log: logging.Logger | Any,
        transient: tuple[type[BaseException], ...],
        failure: Callable[[BaseException, int], FollowAnalyticsError],
    ) -> tenacity.Retrying:
        """A ``tenacity.Retrying`` around one sync attempt that returns a ``requests`` response.

        The attempt raises what must not be retried (TLS errors, redirects) as provider errors
        and lets ``transient`` exceptions through. When retries run out, the last response is
        returned as it is (its caller reports the status) or the last exception is raised as
        ``failure(exc, attempts)``.

        :param what: the request, for log lines and messages.
        :param log: where retries are logged.
        :param transient: the HTTP library's network and timeout exceptions.
        :param failure: builds the error of a request that never got an answer.
        """
        import tenacity

        def stop(state: tenacity.RetryCallState) -> bool:
            # Out of retries, or a wait longer than the cap (backoff_delay() alone never exceeds it:
            # only a Retry-After can), which fails at once.
            return state.attempt_number > self.max_retries or state.upcoming_sleep > self.max_retry_delay

        def before_sleep(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            assert outcome is not None
            assert state.next_action is not None
            retry = (state.attempt_number, self.max_retries, state.next_action.sleep)
            if outcome.failed:
                name = type(outcome.exception()).__name__
                log.warning("FollowAnalytics %s: %s; retry %d/%d in %.1fs", what, name, *retry)
            else:
                response = outcome.result()
                response.close()
                log.warning(
                    "FollowAnalytics %s answered HTTP %d; retry %d/%d in %.1fs", what, response.status_code, *retry
                )

        def give_up(state: tenacity.RetryCallState) -> Any:
            outcome = state.outcome
            assert outcome is not None
            exc = outcome.exception()
            if exc is not None:
                raise failure(exc, state.attempt_number) from None
            response = outcome.result()
            if state.attempt_number > self.max_retries:
                return response  # out of retries: the caller reports the status and the server's message
            response.close()
            raise FollowAnalyticsRetryableError(
                f"FollowAnalytics {what} failed: HTTP {response.status_code} with Retry-After "
                f"{state.upcoming_sleep:.0f}s, longer than max_retry_delay={self.max_retry_delay:.0f}s",
                http_status=response.status_code,
                retry_after=state.upcoming_sleep,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(transient)
            | tenacity.retry_if_result(
                lambda response: classify(response.status_code, may_relogin=False) is Outcome.RETRY
            ),
            stop=stop,
            wait=self.wait,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
