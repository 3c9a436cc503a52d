"""The one reader of a ready export's body, as the sync client returns it (internal)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_followanalytics._urls import redact_text
from airflow_provider_followanalytics.exceptions import FollowAnalyticsDownloadError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests


class ExportStream:
    """A ready export being read: iterate :meth:`chunks`; check ``bytes_read`` afterwards.

    :param response: the streamed ``requests`` response (status 200).
    :param chunk_size: bytes per read.
    """

    def __init__(self, response: requests.Response, chunk_size: int, secrets: tuple[str | None, ...] = ()):
        self._response = response
        self._chunk_size = chunk_size
        self._secrets = secrets
        self.bytes_read = 0
        length = response.headers.get("Content-Length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        self.content_type: str = response.headers.get("Content-Type", "")

    def chunks(self) -> Iterator[bytes]:
        """Yield the body in chunks; raise :class:`FollowAnalyticsDownloadError` if it is cut short."""
        import requests
        import urllib3.exceptions

        try:
            for chunk in self._response.raw.stream(self._chunk_size, decode_content=False):
                if chunk:
                    self.bytes_read += len(chunk)
                    yield chunk
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            ConnectionError,
            TimeoutError,
            OSError,
        ) as exc:
            reason = redact_text(f"{type(exc).__name__}: {exc}", self._secrets)
            raise FollowAnalyticsDownloadError(
                f"FollowAnalytics export download broke off after {self.bytes_read} bytes"
                f"{f' of {self.content_length}' if self.content_length is not None else ''}: {reason}"
            ) from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise FollowAnalyticsDownloadError(
                f"FollowAnalytics export download is truncated: received {self.bytes_read} bytes, "
                f"Content-Length announced {self.content_length}."
            )
