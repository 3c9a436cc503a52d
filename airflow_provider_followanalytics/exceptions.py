"""Exceptions of the FollowAnalytics provider: one family rooted in ``AirflowException``, whose messages
name what failed, the HTTP status and the server's message, never a password or a token."""

from __future__ import annotations

from airflow.exceptions import AirflowException

from airflow_provider_followanalytics._compat import AirflowFailException


class FollowAnalyticsError(AirflowException):
    """Base class of every error raised by this provider."""


class FollowAnalyticsConfigError(FollowAnalyticsError, ValueError):
    """A connection, argument or callback URL is invalid; nothing was sent."""


class FollowAnalyticsAPIError(FollowAnalyticsError):
    """The API answered with an error status or an unreadable / unsuccessful envelope.

    :param message: the full, human-readable message.
    :param http_status: the HTTP status the server answered (``None`` when no answer came).
    :param server_message: the ``message`` / ``error_message`` the server sent, if any.
    """

    def __init__(self, message: str, *, http_status: int | None = None, server_message: str | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.server_message = server_message


class FollowAnalyticsAuthError(FollowAnalyticsAPIError, AirflowFailException):
    """Logging in failed; an ``AirflowFailException``, since task retries would only repeat the login."""


class FollowAnalyticsRetryableError(FollowAnalyticsAPIError):
    """A transient failure (network error, timeout, 429 or 5xx) that may succeed later.

    :param retry_after: seconds the server asked to wait (``Retry-After``), if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        server_message: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, http_status=http_status, server_message=server_message)
        self.retry_after = retry_after


class FollowAnalyticsExportExpiredError(FollowAnalyticsAPIError, AirflowFailException):
    """The callback URL answered 400 (its export token is missing, invalid or expired); an
    ``AirflowFailException``, since the link never becomes valid again: clear the export task instead."""


#: The name the sensor has always exported; the same class.
ExportLinkExpiredError = FollowAnalyticsExportExpiredError


class FollowAnalyticsExportNotReadyError(FollowAnalyticsAPIError):
    """The callback URL answered 202: the export file is not generated yet."""


class FollowAnalyticsEmptyExportError(FollowAnalyticsError, AirflowFailException):
    """A CSV export has no data row and the task was told ``allow_empty=False``; nothing was written.
    An ``AirflowFailException``: a retry would read the same export."""


class FollowAnalyticsDownloadError(FollowAnalyticsAPIError):
    """The export download broke off or does not match its announced size."""
