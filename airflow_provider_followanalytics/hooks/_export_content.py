"""What a transfer learns about an export as its bytes pass (internal): the CSV header's columns, the exact
record count, and progress lines for the task log.

Counting is quote-aware (RFC 4180): a newline inside a quoted field is not a record. It runs in C over
each piece (``bytes.count``; ``bytes.split`` at the quotes when a piece holds any), never a Python loop
per row:
BENCHMARKS.md *Counting rows* measures its cost beside a transfer that does not count.
"""

from __future__ import annotations

import csv
import time
from itertools import repeat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

#: The header is read from at most this many bytes (a header longer than that is not a CSV header).
_HEADER_LIMIT = 64 * 1024
MiB = 1 << 20
#: Seconds between two progress lines of a transfer (and one at the end, by ``transfer_export``).
PROGRESS_INTERVAL = 30.0


def is_csv(content_type: str) -> bool:
    """Whether an export served with ``content_type`` is CSV (XLS exports are counted in bytes only)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in ("text/csv", "text/plain", "application/csv") or kind.endswith("+csv")


class ExportContent:
    """The shape of one export's body, fed piece by piece: bytes, and for CSV the columns and the rows.

    :param csv_body: read the header and look for data rows (a CSV export); else bytes only.
    :param count_rows: count every record (quote-aware); else only whether a data row follows the header.
    """

    def __init__(self, csv_body: bool, *, count_rows: bool = True) -> None:
        self.csv = csv_body
        self.count_rows = count_rows
        self.size = 0
        self._newlines = 0  # record ends seen: newlines outside quoted fields
        self._inside = False  # the last piece ended inside a quoted field
        self._last = b""  # the body's last byte (a final record may have no newline)
        self._head = bytearray()  # the first bytes, until the header's end
        self.columns: list[str] | None = None

    def feed(self, piece: bytes | memoryview) -> None:
        """Take the next piece of the body (as served, before any gzip)."""
        if not piece:
            return
        self.size += len(piece)
        if not self.csv:
            return
        data = bytes(piece) if isinstance(piece, memoryview) else piece
        self._last = data[-1:]
        if self.columns is None and len(self._head) < _HEADER_LIMIT:
            self._head += data[: _HEADER_LIMIT - len(self._head)]
        if not self.count_rows and self.size - len(data) > _HEADER_LIMIT:
            return  # not counting: past the first piece, the body is known to hold more than a header
        newlines = data.count(b"\n")
        if self._inside or b'"' in data:
            # Split at the quotes: the parts alternate outside / inside a quoted field (an escaped
            # quote, "", is an empty part between two quotes, which keeps the alternation right).
            parts = data.split(b'"')
            inside = parts[0::2] if self._inside else parts[1::2]
            newlines -= sum(map(bytes.count, inside, repeat(b"\n")))
            if len(parts) % 2 == 0:  # an odd number of quotes: the piece ends on the other side
                self._inside = not self._inside
        self._newlines += newlines

    @property
    def counted(self) -> bool:
        """Whether every record was counted (a CSV body, and counting asked for or the body is small)."""
        return self.csv and (self.count_rows or self.size <= _HEADER_LIMIT)

    @property
    def rows(self) -> int | None:
        """Data rows (records after the header), exact; None when not counted (XLS, or not asked)."""
        if not self.counted:
            return None
        records = self._newlines + (1 if self._last not in (b"", b"\n") else 0)
        return max(records - 1, 0)

    @property
    def empty(self) -> bool:
        """A CSV body with no data row (only a header, or nothing at all)."""
        return self.csv and self.size <= _HEADER_LIMIT and self.rows == 0

    def finish(self) -> None:
        """The body ended: read the header's columns (as strings, BOM and CR removed)."""
        if not self.csv or self.columns is not None or not self._head:
            return
        text = self._head.decode("utf-8", errors="replace").lstrip("\ufeff")
        row = next(csv.reader(text.splitlines()[:1] or [""]), [])
        self.columns = [name.strip() for name in row]


class Progress:
    """Task-log lines while an export streams: at most one every ``every`` seconds.

    :param log: the task's logger.
    :param total: the export's size (Content-Length), if known: then a percentage and the time left.
    :param every: seconds between two lines (default :data:`PROGRESS_INTERVAL`).
    """

    def __init__(self, log: logging.Logger | Any, total: int | None, every: float | None = None) -> None:
        self.log, self.total = log, total
        self.every = PROGRESS_INTERVAL if every is None else every
        self.started = time.monotonic()
        self._next = self.started + self.every

    def update(self, done: int) -> None:
        """Say how far the transfer is, if a line is due (one clock read per piece otherwise)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        seconds = now - self.started
        rate = done / MiB / max(seconds, 1e-6)
        if self.total:
            left = (self.total - done) / MiB / rate if rate > 0 else float("inf")
            self.log.info(
                "Transferred %.1f MiB of %.1f MiB (%d %%) in %.0fs, %.1f MiB/s, about %.0fs left",
                done / MiB,
                self.total / MiB,
                100 * done // self.total,
                seconds,
                rate,
                left,
            )
        else:
            self.log.info("Transferred %.1f MiB in %.0fs, %.1f MiB/s", done / MiB, seconds, rate)
