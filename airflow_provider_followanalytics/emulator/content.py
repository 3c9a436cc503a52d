"""Deterministic export file contents served by the emulator.

Every export the emulator serves is ``export_chunks(size, file_format, seed)``:
a byte stream of exactly ``size`` bytes that depends only on its arguments, so
tests and benchmarks can check a downloaded file byte for byte (or by its
SHA-256) without keeping a copy of it.

Generation is cheap enough to move gigabytes: a block of about 1 MiB is built
once per ``(format, seed)`` and cached, and the stream is that block repeated
(after a short prefix), served as slices of a doubled copy of the block.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CSV_HEADER",
    "EXPORT_FORMATS",
    "XLS_MAGIC",
    "expected_export_bytes",
    "expected_export_sha256",
    "export_chunks",
]

#: Formats the FollowAnalytics export endpoints produce.
EXPORT_FORMATS: tuple[str, ...] = ("csv", "xls")

#: First line of every CSV export.
CSV_HEADER: bytes = b"device_id,current_user_id,platform,app_version,last_seen_at,city\n"

#: OLE2 compound document signature: the first 8 bytes of a legacy ``.xls`` file.
XLS_MAGIC: bytes = bytes.fromhex("D0CF11E0A1B11AE1")

_BLOCK_TARGET = 1 << 20  # about 1 MiB of rows per repeated block

# Non-ASCII cities exercise UTF-8 decoding; the quoted one exercises CSV quoting.
_CITIES: tuple[str, ...] = (
    "Paris",
    "Montréal",
    "São Paulo",
    "Zürich",
    "Kraków",
    "東京",
    '"Washington, D.C."',
    "Lyon",
)
_PLATFORMS: tuple[str, ...] = ("ios", "android", "web")


def _check_format(file_format: str) -> str:
    fmt = file_format.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {file_format!r}; expected one of {EXPORT_FORMATS}")
    return fmt


def _csv_rows(seed: int) -> bytes:
    """Build about 1 MiB of complete CSV rows, deterministic in ``seed``."""
    stream = hashlib.shake_256(f"followanalytics-emulator-csv:{seed}".encode()).digest(16 * 16384)
    rows: list[str] = []
    total = 0
    i = 0
    while total < _BLOCK_TARGET:
        j = i % 16384
        rnd = stream[j * 16 : j * 16 + 16]
        n = int.from_bytes(rnd[:8], "big")
        h = rnd.hex()
        device_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        user_id = f"user_{(n >> 8) % 1_000_000:06d}" if n % 5 else ""
        platform = _PLATFORMS[n % len(_PLATFORMS)]
        version = f"{3 + n % 3}.{(n >> 4) % 20}.{(n >> 9) % 10}"
        day = 1 + (n >> 13) % 28
        month = 1 + (n >> 18) % 12
        seconds = (n >> 22) % 86400
        last_seen = f"2024-{month:02d}-{day:02d}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
        city = _CITIES[(n >> 40) % len(_CITIES)] if i % 7 else "Montréal"
        row = f"{device_id},{user_id},{platform},{version},{last_seen},{city}\n"
        rows.append(row)
        total += len(row.encode())
        i += 1
    return "".join(rows).encode("utf-8")


@functools.lru_cache(maxsize=8)
def _pattern(file_format: str, seed: int) -> tuple[bytes, bytes, bytes]:
    """Return ``(prefix, block, block + block)`` for a format and seed (cached)."""
    if file_format == "csv":
        prefix, block = CSV_HEADER, _csv_rows(seed)
    else:
        prefix = XLS_MAGIC
        block = hashlib.shake_256(f"followanalytics-emulator-xls:{seed}".encode()).digest(_BLOCK_TARGET)
    return prefix, block, block + block


def export_chunks(size: int, file_format: str = "csv", seed: int = 0, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Yield the export file of exactly ``size`` bytes, in chunks of at most ``chunk_size``.

    The stream is deterministic in ``(size, file_format, seed)`` and a shorter
    export is a prefix of a longer one with the same format and seed.

    * ``csv``: UTF-8 text, the header line :data:`CSV_HEADER` then rows
      (``device_id,current_user_id,platform,app_version,last_seen_at,city``),
      the last row cut wherever ``size`` ends.
    * ``xls``: :data:`XLS_MAGIC` then pseudo-random bytes.

    Args:
        size: exact number of bytes to produce (>= 0).
        file_format: ``"csv"`` or ``"xls"``.
        seed: varies the content.
        chunk_size: largest chunk yielded (> 0).
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    prefix, block, doubled = _pattern(_check_format(file_format), seed)
    return _generate(size, prefix, block, doubled, chunk_size)


def _generate(size: int, prefix: bytes, block: bytes, doubled: bytes, chunk_size: int) -> Iterator[bytes]:
    period = len(block)
    plen = len(prefix)
    pos = 0
    while pos < size:
        want = min(chunk_size, size - pos)
        parts: list[bytes] = []
        got = 0
        while got < want:
            if pos < plen:
                piece = prefix[pos : pos + want - got]
            else:
                offset = (pos - plen) % period
                piece = doubled[offset : offset + min(want - got, period)]
            parts.append(piece)
            got += len(piece)
            pos += len(piece)
        yield parts[0] if len(parts) == 1 else b"".join(parts)


def expected_export_bytes(size: int, file_format: str = "csv", seed: int = 0) -> bytes:
    """Return the whole export as bytes (for small sizes in tests)."""
    return b"".join(export_chunks(size, file_format, seed))


def expected_export_sha256(size: int, file_format: str = "csv", seed: int = 0) -> str:
    """Return the hex SHA-256 of the export of ``size`` bytes, computed in bounded memory."""
    digest = hashlib.sha256()
    for chunk in export_chunks(size, file_format, seed):
        digest.update(chunk)
    return digest.hexdigest()
