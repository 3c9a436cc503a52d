"""Streaming building blocks shared by the S3 and GCS transfer operators (internal).

How the bytes of an export flow, whatever its size::

    callback URL ──1 MiB reads──> [gzip] ──> blocks of block_size (bytearray) ──> uploader thread(s)
        (task's main thread: download, compress, fill the next block)    (S3 parts / GCS chunks)

* The task's main thread downloads the export in 1 MiB reads (``hook.open_export``),
  optionally gzips it, and copies the bytes into a preallocated block; no join, no copy
  of a whole part.
* A full block is handed to the uploader while the main thread fills the next one, so the
  download and the upload overlap. The hand-off is bounded: when every upload slot is busy
  the download pauses, and TCP flow control slows the server. Memory stays at about
  ``(upload slots + 1) x block_size`` for a 100 MiB export as for a 100 GiB one.
* The last block only leaves :func:`iter_blocks` after the download ended and matched its
  ``Content-Length`` (``ExportStream.chunks`` checks it), so a truncated download can never
  complete an upload: an S3 object appears on ``CompleteMultipartUpload`` only, a GCS object
  when its final chunk arrives, and neither is sent after a failed download.
* A download that breaks off is started again from byte zero (:func:`transfer_with_restarts`),
  after the failed attempt discarded its partial upload.
"""

from __future__ import annotations

import collections
import threading
import time
import zlib
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_followanalytics._api import backoff_delay
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsConfigError,
    FollowAnalyticsDownloadError,
    FollowAnalyticsError,
)

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Iterator

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


def gzip_chunks(chunks: Iterable[bytes], level: int) -> Iterator[bytes]:
    """Compress a stream of chunks into one gzip member, on the fly.

    The gzip header carries no file name and a zero mtime, so the same export always
    compresses to the same bytes.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def iter_blocks(chunks: Iterable[bytes], sizes: Iterator[int]) -> Iterator[bytearray]:
    """Regroup a stream of chunks into consecutive blocks of the sizes ``sizes`` yields.

    Every block but the last is exactly its size; the last one holds what remains and is
    yielded only once ``chunks`` is exhausted (for an export: downloaded and checked). An
    empty stream yields one empty block. Each block is a new ``bytearray`` filled in place,
    so the caller may keep it while the next one fills.
    """
    block: bytearray | None = None
    size = filled = 0
    yielded = False
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            if block is None:  # allocate lazily: no spare block after the last full one
                size, filled = next(sizes), 0
                block = bytearray(size)
            take = min(len(view), size - filled)
            block[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled == size:
                yield block
                yielded = True
                block = None
    if block is not None:
        del block[filled:]
        yield block
    elif not yielded:
        yield bytearray()


def transfer_with_restarts(
    hook: FollowAnalyticsHook,
    callback_url: str,
    attempts: int,
    transfer_once: Callable[[ExportStream], T],
    log: logging.Logger | Any,
) -> T:
    """Run ``transfer_once`` on a fresh download until it succeeds, at most ``attempts`` times.

    ``transfer_once`` must leave nothing behind when it raises (abort its multipart upload,
    drop its resumable session). Only a download that broke off
    (:class:`FollowAnalyticsDownloadError`: truncated body, reset connection, read timeout)
    is started again, from zero; every other error (a 400 expired link, a 202 not ready,
    an upload error) fails at once; a 400 raises :class:`FollowAnalyticsExportExpiredError`,
    which Airflow does not retry.
    """
    settings = hook.settings
    for attempt in range(1, attempts + 1):
        try:
            with hook.open_export(callback_url) as export:
                return transfer_once(export)
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
    raise FollowAnalyticsConfigError(f"download_attempts must be >= 1, got {attempts}")  # pragma: no cover


class UploaderStopped(FollowAnalyticsError):
    """The uploading side of a :class:`BlockPipe` ended before the download did."""


class DownloadAborted(FollowAnalyticsError):
    """Raised to the uploading side of a :class:`BlockPipe` when the download failed."""


class BlockPipe:
    """Hands blocks from the downloading thread to an uploading thread that reads it like a file.

    ``put`` returns once the reader has taken the block (or at once while fewer than
    ``depth`` blocks wait), so the download runs at most one block ahead of the upload with
    the default ``depth=0``: enough to keep both busy, and the least memory.

    The reader gets ``bytes`` (``read(n)``, ``tell()``: what
    ``google.cloud.storage.Blob.upload_from_file`` consumes). ``read`` returns fewer than
    ``n`` bytes only at the end of the stream, and raises :class:`DownloadAborted` if the
    writer failed, so a broken download is never taken for a (short) end of file.

    Writer side: :meth:`put`, then :meth:`finish`, or :meth:`fail` on error. Reader side:
    :meth:`read`, :meth:`tell`, and :meth:`close_reader` when it stops reading.
    """

    def __init__(self, depth: int = 0) -> None:
        self._depth = depth
        self._blocks: collections.deque[bytearray] = collections.deque()
        self._cond = threading.Condition()
        self._finished = False
        self._error: str | None = None
        self._reader_closed = False
        self._current: bytes = b""
        self._offset = 0
        self._position = 0

    # writer side
    def put(self, block: bytearray) -> None:
        """Hand a block over; wait until no more than ``depth`` blocks wait. Raise if the reader stopped."""
        with self._cond:
            if self._reader_closed:
                raise UploaderStopped("the upload stopped before the download finished")
            self._blocks.append(block)
            self._cond.notify_all()
            while len(self._blocks) > self._depth and not self._reader_closed:
                self._cond.wait()
            if self._reader_closed:
                raise UploaderStopped("the upload stopped before the download finished")

    def finish(self) -> None:
        """Mark the end of the stream: the reader gets the blocks handed over, then end of file."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def fail(self, reason: str) -> None:
        """Make the reader's next ``read`` raise :class:`DownloadAborted` instead of returning data or EOF."""
        with self._cond:
            self._error = reason
            self._blocks.clear()
            self._cond.notify_all()

    # reader side
    def _next_block(self) -> bytes | None:
        with self._cond:
            while not self._blocks and not self._finished and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise DownloadAborted(f"the download failed, the upload must not complete: {self._error}")
            if not self._blocks:
                return None
            block = self._blocks.popleft()
            self._cond.notify_all()
        # Upload libraries want immutable bytes (google-crc32c refuses a bytearray): one copy,
        # after which the bytearray is freed.
        return bytes(block)

    def read(self, size: int = -1) -> bytes:
        """Return the next ``size`` bytes (fewer only at the end of the stream)."""
        if size is None or size < 0:
            raise ValueError("BlockPipe.read needs a size")
        if self._offset == len(self._current):
            self._current, self._offset = b"", 0  # let the block already sent go before waiting
            block = self._next_block()
            if block is None:
                return b""
            if len(block) == size:  # the common case: one whole block, no slicing
                self._position += size
                return block
            self._current = block
        parts: list[bytes] = []
        wanted = size
        while wanted:
            if self._offset == len(self._current):
                block = self._next_block()
                if block is None:
                    break
                self._current, self._offset = block, 0
                continue
            piece = self._current[self._offset : self._offset + wanted]
            self._offset += len(piece)
            wanted -= len(piece)
            parts.append(piece)
        out = b"".join(parts)
        self._position += len(out)
        return out

    def tell(self) -> int:
        """Bytes read so far."""
        return self._position

    def close_reader(self) -> None:
        """The reader stops: a writer waiting in :meth:`put` (or calling it later) raises."""
        with self._cond:
            self._reader_closed = True
            self._blocks.clear()
            self._cond.notify_all()

    def readable(self) -> bool:
        """File-like protocol: this is a readable stream."""
        return True

    def seekable(self) -> bool:
        """File-like protocol: it cannot seek."""
        return False


def describe_size(nbytes: int) -> str:
    """``"8 MiB"``, ``"256 KiB"`` or ``"1000 bytes"`` for logs."""
    if nbytes >= MiB and nbytes % MiB == 0:
        return f"{nbytes // MiB} MiB"
    if nbytes >= 1024 and nbytes % 1024 == 0:
        return f"{nbytes // 1024} KiB"
    return f"{nbytes} bytes"


def describe_rate(nbytes: int, seconds: float) -> str:
    """``"12.3 MiB in 4.5s (2.7 MiB/s)"`` for logs."""
    rate = nbytes / MiB / seconds if seconds > 0 else 0.0
    return f"{nbytes / MiB:.1f} MiB in {seconds:.1f}s ({rate:.1f} MiB/s)"
