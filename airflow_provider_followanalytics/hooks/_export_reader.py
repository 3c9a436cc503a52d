"""Reading a ready export (internal): the one reader (gzip on the fly; upload libraries pull parts with
``read(n)``) and the one restart-from-zero policy, used by ``FollowAnalyticsHook.download_export`` and
by every transfer.
"""

from __future__ import annotations

import io
import time
import zlib
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

from airflow_provider_followanalytics import _metrics
from airflow_provider_followanalytics._api import backoff_delay
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsConfigError,
    FollowAnalyticsDownloadError,
    FollowAnalyticsEmptyExportError,
)
from airflow_provider_followanalytics.hooks._export_content import ExportContent, Progress, is_csv

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    from airflow_provider_followanalytics._api import ConnectionSettings
    from airflow_provider_followanalytics.hooks._sync_client import ExportStream

MiB = 1 << 20

T = TypeVar("T")


class ExportSource(Protocol):
    """What reading an export needs of ``FollowAnalyticsHook``: its settings (for the backoff) and
    :meth:`~FollowAnalyticsHook.open_export`."""

    @property
    def settings(self) -> ConnectionSettings: ...

    def open_export(self, callback_url: str, chunk_size: int = ...) -> AbstractContextManager[ExportStream]: ...


class ExportReader(io.RawIOBase):
    """A ready export as a read-only, non-seekable binary file, optionally gzipped on the fly.

    ``read(n)`` returns exactly ``n`` bytes until the end of the export. A download error is raised
    from ``read`` and every later call, never taken for an end of file. Gzip output is one member
    with no file name and a zero mtime: the same export always compresses to the same bytes.

    :param export: the open download (``FollowAnalyticsHook.open_export``).
    :param gzip_level: a zlib level to compress with, or None for the export as served.
    :param watch: what to learn from the body as it passes (rows, columns; see ``ExportWatch``).
    """

    def __init__(self, export: ExportStream, gzip_level: int | None = None, watch: ExportWatch | None = None) -> None:
        super().__init__()
        self._export, self._chunks = export, export.chunks()
        self._compressor = None if gzip_level is None else zlib.compressobj(gzip_level, zlib.DEFLATED, 31)
        self._pending, self._ended = memoryview(b""), False
        self._error: BaseException | None = None
        self.bytes_out = 0
        self.content_type = export.content_type
        self.content_length = export.content_length  # of the export as served (before gzip)
        self._watch = watch
        self.content: ExportContent | None = None if watch is None else watch.start(export)

    @property
    def bytes_downloaded(self) -> int:
        """Bytes of the export received so far (before gzip)."""
        return self._export.bytes_read

    def readable(self) -> bool:
        """A readable stream (not seekable: the ``RawIOBase`` default)."""
        return True

    def tell(self) -> int:
        """Bytes returned so far (google-resumable-media counts a stream's position with it)."""
        return self.bytes_out

    def close(self) -> None:
        """Stop reading the download (a later read raises instead of returning the end)."""
        self._chunks.close()
        super().close()

    def _fill(self) -> bool:
        """Make ``_pending`` non-empty; False at the end of the export."""
        if self.closed:  # a closed reader must never look like the end of the export
            raise ValueError("I/O operation on a closed export reader")
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
            self._ended = chunk is None
            if self._watch is not None:
                self._watch.saw(self, chunk)  # may raise at the end (an empty export refused): nothing is written
            if self._compressor is not None:
                chunk = self._compressor.flush() if chunk is None else self._compressor.compress(chunk)
            self._pending = memoryview(chunk or b"")
        return True

    def readinto(self, buffer: Any) -> int:
        """Copy up to ``len(buffer)`` bytes into ``buffer``; 0 at the end of the export."""
        if not self._fill():
            return 0
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count], self._pending = self._pending[:count], self._pending[count:]
        self.bytes_out += count
        return count

    def blocks(self) -> Iterator[memoryview]:
        """Yield the rest of the export piece by piece, as it arrives (and is gzipped).

        For writers that take any size: one copy less than ``read(n)``, which joins pieces into
        ``n`` bytes (measured: 1 GiB into a local file 30 % faster, BENCHMARKS.md).
        """
        while self._fill():
            block, self._pending = self._pending, memoryview(b"")
            self.bytes_out += len(block)
            yield block

    def read(self, size: int | None = -1) -> bytes:
        """Return the next ``size`` bytes (fewer only at the end of the export; all that remains for -1)."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(8 * MiB), b""))
        pieces: list[memoryview] = []
        wanted = size
        while wanted and self._fill():
            pieces.append(self._pending[:wanted])
            self._pending = self._pending[len(pieces[-1]) :]
            wanted -= len(pieces[-1])
        self.bytes_out += size - wanted
        return b"".join(pieces)


class ExportWatch:
    """What a transfer watches in the body as it streams: progress lines, and for a CSV its columns and rows.

    :param log: the task's logger (a progress line at most every ``PROGRESS_INTERVAL`` seconds).
    :param count_rows: count the CSV records exactly (for lineage); an empty export is found either way.
    :param allow_empty: False to fail, before anything is written, on a CSV export without a data row.
    """

    def __init__(self, log: logging.Logger | Any, *, count_rows: bool, allow_empty: bool = True) -> None:
        self.log, self.count_rows, self.allow_empty = log, count_rows, allow_empty
        self._progress: Progress | None = None

    def start(self, export: ExportStream) -> ExportContent:
        """A new download attempt begins (each restart from zero counts afresh)."""
        self._progress = Progress(self.log, export.content_length)
        return ExportContent(is_csv(export.content_type), count_rows=self.count_rows)

    def saw(self, reader: ExportReader, chunk: bytes | None) -> None:
        """Take one piece as served (``None``: the end of the body)."""
        content = reader.content
        assert content is not None
        assert self._progress is not None
        if chunk is not None:
            content.feed(chunk)
            self._progress.update(reader.bytes_downloaded)
            return
        content.finish()
        if content.empty and not self.allow_empty:
            raise FollowAnalyticsEmptyExportError(
                f"The FollowAnalytics export has no data row (only its header: {', '.join(content.columns or [])}); "
                "allow_empty=False, so nothing was written. Check the export's filters and window (the period or "
                "updated_since), or set allow_empty=True to write it anyway."
            )


def stream_export(
    hook: ExportSource,
    callback_url: str,
    consume: Callable[[ExportReader], T],
    *,
    attempts: int,
    log: logging.Logger | Any,
    gzip_level: int | None = None,
    chunk_size: int | None = None,
    watch: ExportWatch | None = None,
) -> T:
    """Hand ``consume`` a reader of the ready export; start again from zero when the download breaks.

    ``consume`` must leave nothing behind when it raises. Only a broken download (truncated body,
    reset connection, read timeout) is tried again, ``attempts`` times in all; any other error
    (400 expired link, 202 not ready, an upload error) fails at once.
    """
    settings = hook.settings
    for attempt in range(1, attempts + 1):
        try:
            with (
                hook.open_export(callback_url, *(() if chunk_size is None else (chunk_size,))) as export,
                ExportReader(export, gzip_level, watch) as reader,
            ):
                return consume(reader)
        except FollowAnalyticsDownloadError as exc:
            if attempt >= attempts:
                raise FollowAnalyticsDownloadError(
                    f"{exc} (gave up after {attempts} download attempt(s); no object was written)"
                ) from None
            delay = backoff_delay(attempt - 1, settings.retry_delay, settings.max_retry_delay)
            _metrics.download_restarted()
            log.warning(
                "%s -- discarded the partial upload; restarting the transfer from zero in %.1fs (attempt %d of %d)",
                exc,
                delay,
                attempt + 1,
                attempts,
            )
            time.sleep(delay)
    raise FollowAnalyticsConfigError(f"download attempts must be >= 1, got {attempts}")


def transfer_export(
    hook: ExportSource,
    callback_url: str,
    uri: str,
    write: Callable[[ExportReader], str],
    *,
    attempts: int,
    log: logging.Logger | Any,
    gzip_level: int | None = None,
    allow_empty: bool = True,
    count_rows: bool = False,
) -> ExportReader:
    """:func:`stream_export` into ``write`` (which publishes ``uri`` whole or not at all), with its log lines.

    :param callback_url: the checked callback URL (only its redacted form is logged).
    :param write: sends every byte of the reader; returns a note for the log.
    :param allow_empty: False to fail on a CSV export without a data row, before anything is written.
    :param count_rows: count the CSV records exactly (``reader.content.rows``, for lineage).
    :return: the reader, for its byte counts and ``content`` (columns, rows).
    """
    from airflow_provider_followanalytics._urls import redact_url

    if gzip_level is not None and not uri.endswith(".gz"):
        log.warning("gzip=True but %s does not end with '.gz'; most readers detect gzip by that suffix.", uri)
    log.info("Streaming FollowAnalytics export %s to %s", redact_url(callback_url), uri)
    started = time.monotonic()
    watch = ExportWatch(log, count_rows=count_rows, allow_empty=allow_empty)
    reader, note = stream_export(
        hook,
        callback_url,
        lambda reader: (reader, write(reader)),
        attempts=attempts,
        log=log,
        gzip_level=gzip_level,
        watch=watch,
    )
    seconds = time.monotonic() - started
    store = uri.split("://", 1)[0] if "://" in uri else "file"
    _metrics.transfer_finished(
        bytes_downloaded=reader.bytes_downloaded, bytes_written=reader.bytes_out, seconds=seconds, store=store
    )
    log.info(
        "Uploaded %d bytes to %s (%d bytes downloaded, %s) in %.1fs (%.1f MiB/s)",
        reader.bytes_out,
        uri,
        reader.bytes_downloaded,
        note,
        seconds,
        reader.bytes_downloaded / (1 << 20) / max(seconds, 1e-6),
    )
    if reader.content is not None and reader.content.empty:
        log.warning(
            "The FollowAnalytics export written to %s has no data row, only its header; set allow_empty=False to "
            "fail instead (check the export's filters and window).",
            uri,
        )
    return reader


def download_to_file(
    hook: ExportSource,
    callback_url: str,
    fileobj: IO[bytes],
    *,
    attempts: int,
    log: logging.Logger | Any,
    chunk_size: int,
) -> int:
    """:func:`stream_export` into a seekable binary file; return the bytes written. A broken attempt's
    bytes are discarded (rewound and truncated to where it started): the next one writes from zero."""
    start = fileobj.tell()

    def copy(reader: ExportReader) -> int:
        try:
            for block in reader.blocks():
                fileobj.write(block)
        except FollowAnalyticsDownloadError:
            fileobj.seek(start)
            fileobj.truncate()
            raise
        return reader.bytes_downloaded

    return stream_export(hook, callback_url, copy, attempts=attempts, log=log, chunk_size=chunk_size)
