"""The one reader of a ready export, and the restart-from-zero policy, shared by every transfer (internal).

How the bytes of an export flow, whatever its size::

    callback URL --1 MiB reads--> [gzip on the fly] --> ExportReader.read(n) --> the store's own upload library
                                                                                   (boto3, google-cloud-storage, fsspec)

:class:`ExportReader` is a non-seekable binary file: upload libraries pull parts from it with
``read(n)``, so memory stays at about one download chunk plus what the library buffers (one
part or chunk per upload in flight), and TCP flow control slows the server when the upload
is slower. It never returns a short read but at the true end of the export: a body that ends
before its ``Content-Length`` or a broken connection raises
:class:`FollowAnalyticsDownloadError` from ``read``, so no library ever takes a cut export for
a (short) whole one.

:func:`stream_export` owns the restart policy: a download that breaks off is opened again and
the whole upload starts again from byte zero; the consumer discards what it wrote (the upload
libraries abort their multipart upload or resumable session when ``read`` raises).
"""

from __future__ import annotations

import io
import time
import zlib
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_followanalytics._api import backoff_delay
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsDownloadError

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from airflow_provider_followanalytics.hooks.followanalytics import ExportStream, FollowAnalyticsHook

MiB = 1 << 20
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLS_CONTENT_TYPE = "application/vnd.ms-excel"
GZIP_CONTENT_TYPE = "application/gzip"
_TYPES_BY_SUFFIX = {".csv": CSV_CONTENT_TYPE, ".xls": XLS_CONTENT_TYPE}
_TYPES_BY_MEDIA = {"text/csv": CSV_CONTENT_TYPE, "application/vnd.ms-excel": XLS_CONTENT_TYPE}

T = TypeVar("T")


def check_gzip_level(level: object) -> int:
    """Return ``level`` if it is a zlib compression level (0-9), else raise a clear error."""
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        raise FollowAnalyticsConfigError(f"gzip_level={level!r} is invalid; expected an integer from 0 to 9.")
    return level


def check_download_attempts(attempts: object) -> int | None:
    """Return ``attempts`` if it is None or a positive integer, else raise a clear error."""
    if attempts is None:
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise FollowAnalyticsConfigError(
            f"download_attempts={attempts!r} is invalid; expected a positive integer "
            "(or None for the connection's max_retries + 1)."
        )
    return attempts


def content_type_for(server_content_type: str, object_name: str, gzip: bool) -> str:
    """Choose the Content-Type of the uploaded object.

    A gzipped object is ``application/gzip`` (no ``Content-Encoding``: readers get the
    ``.gz`` bytes as stored, like any other compressed file in a data lake). Otherwise the
    export's own type is normalised (CSV exports are UTF-8), or guessed from the object
    name's ``.csv`` / ``.xls`` suffix when the server sent nothing useful.
    """
    if gzip:
        return GZIP_CONTENT_TYPE
    media = server_content_type.split(";", 1)[0].strip().lower()
    if media in _TYPES_BY_MEDIA:
        return _TYPES_BY_MEDIA[media]
    by_suffix = _TYPES_BY_SUFFIX.get(PurePosixPath(object_name).suffix.lower())
    if by_suffix:
        return by_suffix
    return server_content_type.strip() or "application/octet-stream"


class ExportReader(io.RawIOBase):
    """A ready export as a read-only, non-seekable binary file, optionally gzipped on the fly.

    ``read(n)`` returns exactly ``n`` bytes until the end of the export (what upload libraries
    expect of a stream: a short read means the end), ``b""`` after it. A download error is
    raised from ``read`` and from every later call, never turned into an end of file.
    With gzip the output is one gzip member with no file name and a zero mtime, so the same
    export always compresses to the same bytes.

    :param export: the open download (``FollowAnalyticsHook.open_export``).
    :param gzip_level: a zlib level to compress with, or None for the export as served.
    """

    def __init__(self, export: ExportStream, gzip_level: int | None = None) -> None:
        super().__init__()
        self._export = export
        self._chunks = export.chunks()
        self._compressor = None if gzip_level is None else zlib.compressobj(gzip_level, zlib.DEFLATED, 31)
        self._pending = memoryview(b"")
        self._ended = False
        self._error: BaseException | None = None
        self.bytes_out = 0
        self.content_type = export.content_type
        self.content_length = export.content_length  # of the export as served (before gzip)

    @property
    def bytes_downloaded(self) -> int:
        """Bytes of the export received so far (before gzip)."""
        return self._export.bytes_read

    def readable(self) -> bool:
        """File protocol: a readable stream (and not seekable, the ``RawIOBase`` default)."""
        return True

    def tell(self) -> int:
        """Bytes returned so far (google-resumable-media counts a stream's position with it)."""
        return self.bytes_out

    def _fill(self) -> bool:
        """Make ``_pending`` non-empty; False at the end of the export."""
        while not self._pending:
            if self._error is not None:
                raise FollowAnalyticsDownloadError(f"{self._error} (the export reader failed before)") from None
            if self._ended:
                return False
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self._error = exc  # a finished generator would look like a clean end next time
                raise
            if chunk is None:
                self._ended = True
                data = self._compressor.flush() if self._compressor else b""
            else:
                data = self._compressor.compress(chunk) if self._compressor else chunk
            self._pending = memoryview(data)
        return True

    def readinto(self, buffer: Any) -> int:
        """Copy up to ``len(buffer)`` bytes into ``buffer``; 0 at the end of the export."""
        if not self._fill():
            return 0
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.bytes_out += count
        return count

    def read(self, size: int | None = -1) -> bytes:
        """Return the next ``size`` bytes (fewer only at the end of the export; all that remains for -1)."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(8 * MiB), b""))
        pieces: list[memoryview] = []
        wanted = size
        while wanted and self._fill():
            piece = self._pending[:wanted]
            pieces.append(piece)
            self._pending = self._pending[len(piece) :]
            wanted -= len(piece)
        self.bytes_out += size - wanted
        return b"".join(pieces)

    def readall(self) -> bytes:
        """Everything that remains."""
        return self.read(-1)


def stream_export(
    hook: FollowAnalyticsHook,
    callback_url: str,
    consume: Callable[[ExportReader], T],
    *,
    attempts: int,
    log: logging.Logger | Any,
    gzip_level: int | None = None,
    chunk_size: int | None = None,
) -> T:
    """Hand ``consume`` a reader of the ready export; start again from zero when the download breaks.

    ``consume`` must leave nothing behind when it raises (abort its multipart upload, cancel
    its resumable session, remove its temporary file). Only a download that broke off
    (:class:`FollowAnalyticsDownloadError`: truncated body, reset connection, read timeout)
    is started again, at most ``attempts`` times in all; every other error (a 400 expired
    link, a 202 not ready, an upload error) fails at once.
    """
    settings = hook.settings
    for attempt in range(1, attempts + 1):
        try:
            with hook.open_export(callback_url, *(() if chunk_size is None else (chunk_size,))) as export:
                return consume(ExportReader(export, gzip_level))
        except FollowAnalyticsDownloadError as exc:
            if attempt >= attempts:
                raise FollowAnalyticsDownloadError(
                    f"{exc} (gave up after {attempts} download attempt(s); no object was written)"
                ) from None
            delay = backoff_delay(attempt - 1, settings.retry_delay, settings.max_retry_delay)
            log.warning(
                "%s -- discarded the partial upload; restarting the transfer from zero in %.1fs (attempt %d of %d)",
                exc,
                delay,
                attempt + 1,
                attempts,
            )
            time.sleep(delay)
    raise FollowAnalyticsConfigError(f"download attempts must be >= 1, got {attempts}")


def describe_rate(nbytes: int, seconds: float) -> str:
    """``"12.3 MiB in 4.5s (2.7 MiB/s)"`` for logs."""
    rate = nbytes / MiB / seconds if seconds > 0 else 0.0
    return f"{nbytes / MiB:.1f} MiB in {seconds:.1f}s ({rate:.1f} MiB/s)"
